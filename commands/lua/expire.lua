-- Expires a batch of reservations of one shard past their deadline and
-- gives their units back: to the pool while the sale runs, to regular
-- inventory once it has ended. Pay and expire both start from 'reserved', so
-- exactly one of them wins. The batch's events go to the outbox in one entry.
-- KEYS[1] shard hash, KEYS[2] due zset, KEYS[3] units hash, KEYS[4] outbox
-- ARGV[1] notification channel, ARGV[2] sale id, ARGV[3] order key prefix,
-- then per order: now ms, order id, OrderExpired envelope, StockReleased
-- envelope to the pool, StockReleased envelope to inventory
local ended = redis.call('HGET', KEYS[1], 'ended') == '1'
local events, refilled = {}, false

local function expire(i)
  local now, oid = ARGV[i], ARGV[i + 1]
  local okey = ARGV[3] .. oid
  local o = redis.call('HMGET', okey, 'user', 'status', 'pay_by', 'qty')
  if not o[2] then
    redis.call('ZREM', KEYS[2], oid)
    return {'not_found'}
  end
  if o[2] ~= 'reserved' then
    redis.call('ZREM', KEYS[2], oid)
    return {'skipped', o[2]}
  end
  if tonumber(now) < tonumber(o[3]) then
    return {'not_due'}
  end
  local qty = tonumber(o[4])
  redis.call('HSET', okey, 'status', 'expired', 'expired_at', now)
  redis.call('ZREM', KEYS[2], oid)
  redis.call('HINCRBY', KEYS[3], o[1], -qty)
  redis.call('HINCRBY', KEYS[1], 'expired', qty)
  events[#events + 1] = ARGV[i + 2]
  if ended then
    redis.call('HINCRBY', KEYS[1], 'returned', qty)
    events[#events + 1] = ARGV[i + 4]
    return {'expired', '0'}
  end
  if redis.call('HINCRBY', KEYS[1], 'remaining', qty) == qty then
    refilled = true
  end
  redis.call('HINCRBY', KEYS[1], 'pool_released', qty)
  events[#events + 1] = ARGV[i + 3]
  return {'expired', '1'}
end

local out = {}
for i = 4, #ARGV, 5 do
  out[#out + 1] = expire(i)
end
append_events(KEYS[4], events)
if refilled then
  -- A pool was empty: API nodes that answer sold_out from memory must stop.
  redis.call('PUBLISH', ARGV[1], 'stock ' .. ARGV[2])
end
return out
