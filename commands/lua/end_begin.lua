-- Starts ending a sale: records that it is ending and why, so that a
-- sweeper finishes the end if this node dies half way (the first reason
-- stays). The end itself is end_finish.lua, after every shard is collected.
-- KEYS[1] head hash
-- ARGV[1] reason
local s = redis.call('HMGET', KEYS[1], 'stock', 'ended', 'ending')
if not s[1] then
  return {'not_found'}
end
if s[2] == '1' then
  return {'already_ended'}
end
if s[3] then
  return {'ending', s[3]}
end
redis.call('HSET', KEYS[1], 'ending', ARGV[1])
return {'ending', ARGV[1]}
