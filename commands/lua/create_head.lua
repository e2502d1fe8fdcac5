-- Opens a sale: writes its head, the last of its keys (its shards exist
-- already), and appends SaleCreated. Until the head exists no node knows the
-- sale, so nobody buys from a half-made one.
-- KEYS[1] head hash, KEYS[2] head outbox
-- ARGV[1] SaleCreated envelope, ARGV[2..] field/value pairs of the head
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('XADD', KEYS[2], '*', '1', ARGV[1])
return {'created'}
