-- Expires one reservation past its deadline and gives its units back: to the
-- pool while the sale runs, to regular inventory once it has ended. Pay and
-- expire both start from 'reserved', so exactly one of them wins.
-- KEYS[1] order hash, KEYS[2] due zset, KEYS[3] outbox, KEYS[4] sale hash, KEYS[5] units hash
-- ARGV[1] now ms, ARGV[2] order id, ARGV[3] OrderExpired envelope,
-- ARGV[4] StockReleased envelope (to pool), ARGV[5] StockReleased envelope (to inventory),
-- ARGV[6] notification channel, ARGV[7] sale id
local o = redis.call('HMGET', KEYS[1], 'user', 'status', 'pay_by', 'qty')
if not o[2] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return {'not_found'}
end
if o[2] ~= 'reserved' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return {'skipped', o[2]}
end
if tonumber(ARGV[1]) < tonumber(o[3]) then
  return {'not_due'}
end
local qty = tonumber(o[4])
redis.call('HSET', KEYS[1], 'status', 'expired', 'expired_at', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[5], o[1], -qty)
redis.call('HINCRBY', KEYS[4], 'expired', qty)
if redis.call('HGET', KEYS[4], 'ended') == '1' then
  redis.call('HINCRBY', KEYS[4], 'returned', qty)
  redis.call('XADD', KEYS[3], '*', '1', ARGV[3], '2', ARGV[5])
  return {'expired', '0'}
end
if redis.call('HINCRBY', KEYS[4], 'remaining', qty) == qty and ARGV[6] then
  -- The pool was empty: API nodes that answer sold_out from memory must stop.
  redis.call('PUBLISH', ARGV[6], 'stock ' .. ARGV[7])
end
redis.call('HINCRBY', KEYS[4], 'pool_released', qty)
redis.call('XADD', KEYS[3], '*', '1', ARGV[3], '2', ARGV[4])
return {'expired', '1'}
