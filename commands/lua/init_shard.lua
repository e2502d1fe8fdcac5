-- Opens one shard of a sale: its configuration and its allocation.
-- No event: SaleCreated (in the head's outbox) says how the stock is split.
-- KEYS[1] shard hash
-- ARGV field/value pairs
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return {'created'}
