-- Ends a sale once every shard is closed and collected: the head records the
-- end and SaleEnded goes to its outbox, with the units the shards collected.
-- Ending twice is ending once.
-- KEYS[1] head hash, KEYS[2] head outbox
-- ARGV[1] now ms, ARGV[2] reason, ARGV[3] unsold (the shards' sum),
-- ARGV[4] SaleEnded envelope, ARGV[5] notification channel, ARGV[6] sale id
local s = redis.call('HMGET', KEYS[1], 'stock', 'ended')
if not s[1] then
  return {'not_found'}
end
if s[2] == '1' then
  return {'already_ended'}
end
redis.call('HSET', KEYS[1], 'ended', '1', 'end_reason', ARGV[2], 'ended_at', ARGV[1], 'unsold', ARGV[3])
redis.call('HDEL', KEYS[1], 'ending')
redis.call('XADD', KEYS[2], '*', '1', ARGV[4])
-- API nodes answer ended from memory from now on (commands/guard.go).
redis.call('PUBLISH', ARGV[5], 'ended ' .. ARGV[6])
return {'ended', ARGV[3]}
