-- Pays a reservation: owner, state and deadline are checked and the order is
-- marked paid with OrderPaid in the outbox, in one step. Paying again with the
-- same payment reference answers as the first time.
-- KEYS[1] order hash, KEYS[2] due zset, KEYS[3] outbox, KEYS[4] sale hash
-- ARGV[1] now ms, ARGV[2] user, ARGV[3] payment ref, ARGV[4] order id, ARGV[5] OrderPaid envelope
local o = redis.call('HMGET', KEYS[1], 'user', 'status', 'pay_by', 'payment_ref', 'qty', 'amount', 'paid_at')
if not o[1] or o[1] ~= ARGV[2] then
  return {'not_found'}
end
if o[2] == 'paid' then
  if o[4] == ARGV[3] then
    return {'paid', o[7]}
  end
  return {'already_paid'}
end
if o[2] == 'expired' or tonumber(ARGV[1]) >= tonumber(o[3]) then
  return {'expired'}
end
redis.call('HSET', KEYS[1], 'status', 'paid', 'payment_ref', ARGV[3], 'paid_at', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[4])
redis.call('HINCRBY', KEYS[4], 'paid', o[5])
redis.call('HINCRBY', KEYS[4], 'paid_cents', o[6])
redis.call('XADD', KEYS[3], '*', '1', ARGV[5])
return {'paid', ARGV[1]}
