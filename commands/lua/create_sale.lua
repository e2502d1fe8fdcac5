-- Opens a sale: writes its configuration and full pool, and appends SaleCreated.
-- KEYS[1] sale hash, KEYS[2] outbox
-- ARGV[1] SaleCreated envelope, ARGV[2..] field/value pairs of the sale hash
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('XADD', KEYS[2], '*', '1', ARGV[1])
return {'created'}
