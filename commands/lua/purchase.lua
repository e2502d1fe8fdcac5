-- Reserves stock for one purchase, atomically: blacklist, idempotent retry,
-- sale window, per-user rate limit, per-user limit, a stock decrement that
-- never goes below zero and never runs ahead of the release schedule, the
-- order record with its pay-by deadline, and the events in the outbox.
-- KEYS[1] sale hash, KEYS[2] idem hash, KEYS[3] units hash, KEYS[4] due zset,
-- KEYS[5] outbox, KEYS[6] the new order's hash, KEYS[7] the user's rate-limit
-- key, KEYS[8] the sale's blacklist set
-- ARGV[1] now ms, ARGV[2] user, ARGV[3] idem field, ARGV[4] quantity,
-- ARGV[5] order id, ARGV[6] pay-by ms, ARGV[7] amount cents,
-- ARGV[8] order key prefix, ARGV[9] StockReserved envelope, ARGV[10] OrderPlaced envelope,
-- ARGV[11] notification channel, ARGV[12] sale id ('' for a shard of a
-- sharded sale: its pool reaching 0 does not sell the sale out)
-- Sharded sales only (docs/sharding.md; KEYS[1] is then the home shard's hash):
-- KEYS[9] the shard's applied-moves hash, ARGV[13] '1' when this is the
-- second call of one attempt, after a pull (the first counted the attempt),
-- ARGV[14..] move id, quantity pairs: units moved here for this attempt.
-- They are credited first, whatever the answer, because the donor shards
-- have given them up already; each move once (the hash remembers it), and
-- never into a pool the end has collected (credit.lua says why).
if #ARGV >= 14 then
  local c = redis.call('HMGET', KEYS[1], 'stock', 'collected')
  if c[1] and c[2] ~= '1' then
    for i = 14, #ARGV - 1, 2 do
      if redis.call('HSETNX', KEYS[9], ARGV[i], ARGV[i + 1]) == 1 then
        redis.call('HINCRBY', KEYS[1], 'remaining', ARGV[i + 1])
        redis.call('HINCRBY', KEYS[1], 'moved_in', ARGV[i + 1])
      end
    end
  end
end
local s = redis.call('HMGET', KEYS[1], 'starts', 'ends', 'limit', 'remaining', 'ended', 'price',
  'stock', 'user_interval', 'release_step', 'release_interval')
if not s[1] then
  return {'sale_not_found'}
end
-- Checked here too, not only on the node: a node whose copy of the blacklist
-- missed a notification must not let a blocked user buy.
if redis.call('SISMEMBER', KEYS[8], ARGV[2]) == 1 then
  return {'blocked'}
end
-- A retry answers with the order it already made, even after sell-out or the
-- end, and is not an attempt for the rate limit.
local existing = redis.call('HGET', KEYS[2], ARGV[3])
if existing then
  local o = redis.call('HMGET', ARGV[8] .. existing, 'status', 'pay_by', 'qty')
  return {'existing', existing, o[1], o[2], o[3]}
end
local now = tonumber(ARGV[1])
if s[5] == '1' or now >= tonumber(s[2]) then
  return {'ended'}
end
local starts = tonumber(s[1])
if now < starts then
  return {'not_started'}
end
-- One attempt per user per interval, across every node. The key holds the
-- attempt's time on the callers' clock (the one every decision here uses) and
-- expires with the interval, so idle users cost no memory.
local interval = tonumber(s[8] or '0') or 0
if interval > 0 and ARGV[13] ~= '1' then
  local last = tonumber(redis.call('GET', KEYS[7]) or '')
  if last and now - last < interval then
    return {'rate_limited', math.min(interval, interval - (now - last))}
  end
  redis.call('SET', KEYS[7], ARGV[1], 'PX', interval)
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
  return {'insufficient_stock', remaining}
end
-- Staged release: step units per interval from the start, the first slice at
-- the start. What is out of the pool (stock - remaining) counts against what
-- is released, so units an expiry returned to the pool are for sale again.
local step = tonumber(s[9] or '0') or 0
if step > 0 then
  local every = tonumber(s[10])
  local stock = tonumber(s[7])
  local released = math.min(stock, step * (math.floor((now - starts) / every) + 1))
  local taken = stock - remaining
  if released - taken < qty then
    -- The first slice that makes qty available, counted from 1 at the start.
    local slice = math.ceil((taken + qty) / step)
    return {'not_yet_released', starts + (slice - 1) * every - now}
  end
end
local left = redis.call('HINCRBY', KEYS[1], 'remaining', -qty)
redis.call('HINCRBY', KEYS[1], 'reserved', qty)
redis.call('HINCRBY', KEYS[1], 'orders', 1)
redis.call('HINCRBY', KEYS[3], ARGV[2], qty)
redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
redis.call('HSET', KEYS[6], 'user', ARGV[2], 'qty', qty, 'status', 'reserved',
  'pay_by', ARGV[6], 'placed_at', ARGV[1], 'amount', ARGV[7], 'price', s[6])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[5])
redis.call('XADD', KEYS[5], '*', '1', ARGV[9], '2', ARGV[10])
if left == 0 and ARGV[12] and ARGV[12] ~= '' then
  -- Every API node answers sold_out from memory from now on (commands/guard.go).
  redis.call('PUBLISH', ARGV[11], 'soldout ' .. ARGV[12])
end
return {'reserved', ARGV[5], 'reserved', ARGV[6], ARGV[4], left}
