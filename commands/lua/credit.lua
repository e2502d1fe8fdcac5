-- Credits a move to the recipient shard (docs/sharding.md), once: the shard
-- keeps every move id it applied, forever, so a credit replayed by a mover
-- that outlived the sweeper's recovery is refused. A shard whose pool the end
-- has collected takes nothing: the end credits every move before collecting,
-- so a credit arriving later is a duplicate, and anything else is a bug the
-- audit must see (the log counts the units in this shard) rather than units
-- quietly appearing in a closed pool.
-- KEYS[1] recipient shard hash, KEYS[2] its applied-moves hash
-- ARGV[1] move id, ARGV[2] quantity
local s = redis.call('HMGET', KEYS[1], 'stock', 'collected')
if not s[1] then
  return {'not_found'}
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return {'duplicate'}
end
if s[2] == '1' then
  return {'collected'}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'moved_in', ARGV[2])
return {'credited', redis.call('HINCRBY', KEYS[1], 'remaining', ARGV[2])}
