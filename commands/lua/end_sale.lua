-- Ends a sale: closes its pool and returns the unsold units, recorded in
-- SaleEnded. The caller encodes the event with the pool it read; if a purchase
-- or an expiry moved the pool since, the script answers 'retry' with the new
-- value instead of writing an event that would be wrong.
-- KEYS[1] sale hash, KEYS[2] outbox
-- ARGV[1] now ms, ARGV[2] expected remaining, ARGV[3] reason, ARGV[4] SaleEnded envelope,
-- ARGV[5] notification channel, ARGV[6] sale id
local s = redis.call('HMGET', KEYS[1], 'remaining', 'ended')
if not s[1] then
  return {'not_found'}
end
if s[2] == '1' then
  return {'already_ended'}
end
if s[1] ~= ARGV[2] then
  return {'retry', s[1]}
end
redis.call('HSET', KEYS[1], 'ended', '1', 'end_reason', ARGV[3], 'ended_at', ARGV[1],
  'unsold', s[1], 'remaining', '0')
redis.call('XADD', KEYS[2], '*', '1', ARGV[4])
-- API nodes answer ended from memory from now on (commands/guard.go).
if ARGV[6] then
  redis.call('PUBLISH', ARGV[5], 'ended ' .. ARGV[6])
end
return {'ended', s[1]}
