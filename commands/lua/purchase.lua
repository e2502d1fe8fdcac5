-- Decides a batch of purchases on one shard, in order, each exactly as if it
-- were alone (group commit, commands/batch.go): blacklist, idempotent retry,
-- sale window, per-user rate limit, per-user limit, a stock decrement that
-- never goes below zero and never runs ahead of the release schedule, the
-- order record with its pay-by deadline. Every check of a purchase that can
-- fail runs before it writes. The events of the batch's reservations go to
-- the outbox in ONE entry, in the order decided.
-- KEYS[1] shard hash, KEYS[2] idem hash, KEYS[3] units hash, KEYS[4] due zset,
-- KEYS[5] outbox, KEYS[6] applied-moves hash, KEYS[7] blacklist copy
-- ARGV[1] notification channel, ARGV[2] sale id to announce a sell-out with
-- ('' when the sale has other shards: this pool reaching 0 does not sell it
-- out), ARGV[3] order key prefix, ARGV[4] rate-limit key prefix, ARGV[5] '1'
-- when an answer that writes nothing must write anyway (commands/durable.go),
-- then per purchase: now ms, user, idem field, quantity, order id, pay-by ms,
-- amount cents, StockReserved envelope, OrderPlaced envelope, '1' when this
-- is the second call of one attempt after a pull (the first counted the
-- attempt), the number of moves n, then n move id, quantity pairs: units
-- moved here for this attempt (docs/sharding.md). They are credited first,
-- whatever the answer, because the donors have given them up already; each
-- move once (the hash remembers it), and never into a pool the end has
-- collected (credit.lua says why).
local s = redis.call('HMGET', KEYS[1], 'starts', 'ends', 'limit', 'remaining', 'ended', 'price',
  'stock', 'user_interval', 'release_step', 'release_interval', 'collected')
local starts, ends, limit = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
local remaining, price, stock = tonumber(s[4]), s[6], tonumber(s[7])
local interval = tonumber(s[8] or '0') or 0
local step, every = tonumber(s[9] or '0') or 0, tonumber(s[10] or '0') or 0
local events, wrote, soldout = {}, false, false
-- The batch's reservations touch the pool's counters, the units, the
-- idempotency hash and the expiry queue once, at the end; until then the
-- later purchases of the batch read them here (what the batch added).
local taken, placed = 0, 0
local heldNew, idemNew, idemPairs, duePairs = {}, {}, {}, {}

-- decide decides the purchase whose arguments start at ARGV[i].
local function decide(i, nc)
  local nows, user, idem, qty, oid = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  local payby, cont, c0 = ARGV[i + 5], ARGV[i + 9], i + 11
  local now = tonumber(nows)
  if not s[1] then
    return {'sale_not_found'}
  end
  if nc > 0 and s[11] ~= '1' then
    for j = c0, c0 + 2 * nc - 1, 2 do
      if redis.call('HSETNX', KEYS[6], ARGV[j], ARGV[j + 1]) == 1 then
        redis.call('HINCRBY', KEYS[1], 'remaining', ARGV[j + 1])
        remaining = remaining + tonumber(ARGV[j + 1])
        redis.call('HINCRBY', KEYS[1], 'moved_in', ARGV[j + 1])
        wrote = true
      end
    end
  end
  -- Checked here too, not only on the node: a node whose copy of the
  -- blacklist missed a notification must not let a blocked user buy.
  if redis.call('SISMEMBER', KEYS[7], user) == 1 then
    return {'blocked'}
  end
  -- A retry answers with the order it already made, even after sell-out or
  -- the end, and is not an attempt for the rate limit.
  local existing = idemNew[idem] or redis.call('HGET', KEYS[2], idem)
  if existing then
    local o = redis.call('HMGET', ARGV[3] .. existing, 'status', 'pay_by', 'qty')
    return {'existing', existing, o[1], o[2], o[3]}
  end
  if s[5] == '1' or now >= ends then
    return {'ended'}
  end
  if now < starts then
    return {'not_started'}
  end
  -- One attempt per user per interval, across every node. The key holds the
  -- attempt's time on the callers' clock and expires with the interval, so
  -- idle users cost no memory.
  if interval > 0 and cont ~= '1' then
    local rl = ARGV[4] .. user
    local last = tonumber(redis.call('GET', rl) or '')
    if last and now - last < interval then
      return {'rate_limited', math.min(interval, interval - (now - last))}
    end
    redis.call('SET', rl, nows, 'PX', interval)
    wrote = true
  end
  local held = tonumber(redis.call('HGET', KEYS[3], user) or '0') + (heldNew[user] or 0)
  if held + qty > limit then
    return {'limit_reached'}
  end
  if remaining <= 0 then
    return {'sold_out'}
  end
  if remaining < qty then
    return {'insufficient_stock', remaining}
  end
  -- Staged release: step units per interval from the start, the first slice
  -- at the start. What is out of the pool (stock - remaining) counts against
  -- what is released, so units an expiry returned are for sale again.
  if step > 0 then
    local released = math.min(stock, step * (math.floor((now - starts) / every) + 1))
    local out = stock - remaining
    if released - out < qty then
      -- The first slice that makes qty available, counted from 1 at the start.
      local slice = math.ceil((out + qty) / step)
      return {'not_yet_released', starts + (slice - 1) * every - now}
    end
  end
  remaining, taken, placed = remaining - qty, taken + qty, placed + 1
  heldNew[user] = (heldNew[user] or 0) + qty
  idemNew[idem] = oid
  idemPairs[#idemPairs + 1] = idem
  idemPairs[#idemPairs + 1] = oid
  duePairs[#duePairs + 1] = payby
  duePairs[#duePairs + 1] = oid
  redis.call('HSET', ARGV[3] .. oid, 'user', user, 'qty', qty, 'status', 'reserved',
    'pay_by', payby, 'placed_at', nows, 'amount', ARGV[i + 6], 'price', price)
  events[#events + 1] = ARGV[i + 7]
  events[#events + 1] = ARGV[i + 8]
  wrote = true
  soldout = remaining == 0
  return {'reserved', oid, 'reserved', payby, ARGV[i + 3], remaining}
end

local out = {}
local i = 6
while i <= #ARGV do
  local nc = tonumber(ARGV[i + 10])
  out[#out + 1] = decide(i, nc)
  i = i + 11 + 2 * nc
end
if placed > 0 then
  redis.call('HINCRBY', KEYS[1], 'remaining', -taken)
  redis.call('HINCRBY', KEYS[1], 'reserved', taken)
  redis.call('HINCRBY', KEYS[1], 'orders', placed)
  for user, q in pairs(heldNew) do
    redis.call('HINCRBY', KEYS[3], user, q)
  end
  redis.call('HSET', KEYS[2], unpack(idemPairs))
  redis.call('ZADD', KEYS[4], unpack(duePairs))
end
append_events(KEYS[5], events)
if soldout and ARGV[2] ~= '' then
  -- Every API node answers sold_out from memory from now on (commands/guard.go).
  redis.call('PUBLISH', ARGV[1], 'soldout ' .. ARGV[2])
end
sync_write(KEYS[1], ARGV[5], wrote)
return out
