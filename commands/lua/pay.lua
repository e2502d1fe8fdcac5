-- Pays a batch of reservations of one shard, in order, each as if alone:
-- owner, state and deadline are checked, then the paid total's bound, and
-- only then is the order marked paid with OrderPaid in the outbox. Paying
-- again with the same payment reference answers as the first time. The
-- events of the batch go to the outbox in one entry.
-- KEYS[1] shard hash, KEYS[2] due zset, KEYS[3] outbox
-- ARGV[1] order key prefix, ARGV[2] '1' when an answer that writes nothing
-- must write anyway (commands/durable.go), then per payment: now ms, user,
-- payment ref, order id, and the OrderPaid envelope in three parts, to be
-- joined with the order's quantity and amount (commands/pay.go)
local events, wrote = {}, false

local function pay(i)
  local now, user, ref, oid = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local okey = ARGV[1] .. oid
  local o = redis.call('HMGET', okey, 'user', 'status', 'pay_by', 'payment_ref', 'qty', 'amount', 'paid_at')
  if not o[1] or o[1] ~= user then
    return {'not_found'}
  end
  if o[2] == 'paid' then
    if o[4] == ref then
      return {'paid', o[7]}
    end
    return {'already_paid'}
  end
  if o[2] == 'expired' or tonumber(now) >= tonumber(o[3]) then
    return {'expired'}
  end
  -- The shard's paid total is an integer the log's readers hold in a
  -- double: refuse before writing anything rather than mark an order paid
  -- whose OrderPaid could not be counted.
  local paid = tonumber(redis.call('HGET', KEYS[1], 'paid_cents') or '0')
  if paid + tonumber(o[6]) > 9007199254740991 then
    return {'overflow'}
  end
  redis.call('HSET', okey, 'status', 'paid', 'payment_ref', ref, 'paid_at', now)
  redis.call('ZREM', KEYS[2], oid)
  redis.call('HINCRBY', KEYS[1], 'paid', o[5])
  redis.call('HINCRBY', KEYS[1], 'paid_cents', o[6])
  events[#events + 1] = ARGV[i + 4] .. o[5] .. ARGV[i + 5] .. o[6] .. ARGV[i + 6]
  wrote = true
  return {'paid', now}
end

local out = {}
for i = 3, #ARGV, 7 do
  out[#out + 1] = pay(i)
end
append_events(KEYS[3], events)
sync_write(KEYS[1], ARGV[2], wrote)
return out
