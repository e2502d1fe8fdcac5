-- Reserves stock for one purchase, atomically: sale window, idempotent retry,
-- per-user limit, a stock decrement that never goes below zero, the order
-- record with its pay-by deadline, and the events in the outbox.
-- KEYS[1] sale hash, KEYS[2] idem hash, KEYS[3] units hash, KEYS[4] due zset,
-- KEYS[5] outbox, KEYS[6] the new order's hash
-- ARGV[1] now ms, ARGV[2] user, ARGV[3] idem field, ARGV[4] quantity,
-- ARGV[5] order id, ARGV[6] pay-by ms, ARGV[7] amount cents,
-- ARGV[8] order key prefix, ARGV[9] StockReserved envelope, ARGV[10] OrderPlaced envelope
local s = redis.call('HMGET', KEYS[1], 'starts', 'ends', 'limit', 'remaining', 'ended', 'price')
if not s[1] then
  return {'sale_not_found'}
end
-- A retry answers with the order it already made, even after sell-out or the end.
local existing = redis.call('HGET', KEYS[2], ARGV[3])
if existing then
  local o = redis.call('HMGET', ARGV[8] .. existing, 'status', 'pay_by', 'qty')
  return {'existing', existing, o[1], o[2], o[3]}
end
local now = tonumber(ARGV[1])
if s[5] == '1' or now >= tonumber(s[2]) then
  return {'ended'}
end
if now < tonumber(s[1]) then
  return {'not_started'}
end
local qty = tonumber(ARGV[4])
local held = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
if held + qty > tonumber(s[3]) then
  return {'limit_reached'}
end
local remaining = tonumber(s[4])
if remaining <= 0 then
  return {'sold_out'}
end
if remaining < qty then
  return {'insufficient_stock'}
end
redis.call('HINCRBY', KEYS[1], 'remaining', -qty)
redis.call('HINCRBY', KEYS[1], 'reserved', qty)
redis.call('HINCRBY', KEYS[1], 'orders', 1)
redis.call('HINCRBY', KEYS[3], ARGV[2], qty)
redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
redis.call('HSET', KEYS[6], 'user', ARGV[2], 'qty', qty, 'status', 'reserved',
  'pay_by', ARGV[6], 'placed_at', ARGV[1], 'amount', ARGV[7], 'price', s[6])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[5])
redis.call('XADD', KEYS[5], '*', '1', ARGV[9], '2', ARGV[10])
return {'reserved', ARGV[5], 'reserved', ARGV[6], ARGV[4]}
