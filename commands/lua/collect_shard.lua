-- Takes a closed shard's pool as its unsold units, once: a second call (an
-- end resumed after a crash) answers the units the first one took.
-- KEYS[1] shard hash
local s = redis.call('HMGET', KEYS[1], 'remaining', 'ended', 'collected', 'unsold')
if not s[1] then
  return {'not_found'}
end
if s[2] ~= '1' then
  return {'open'}
end
if s[3] == '1' then
  return {'collected', s[4]}
end
redis.call('HSET', KEYS[1], 'remaining', '0', 'unsold', s[1], 'collected', '1')
return {'collected', s[1]}
