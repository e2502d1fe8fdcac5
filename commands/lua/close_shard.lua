-- Closes one shard of a sale that is ending: no purchase and no move
-- out of it from now on. Its pool is collected later (collect_shard.lua),
-- once every move in flight has landed. Closing twice is closing once.
-- KEYS[1] shard hash
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found'}
end
redis.call('HSET', KEYS[1], 'ended', '1')
return {'closed'}
