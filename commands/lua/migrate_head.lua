-- Moves a sale written before the one-path layout to it, once, on first
-- read (commands/sale.go). Earlier versions kept a sharded sale's head in
-- {sale:ID}:sale, and a classic sale wholly there; today every sale has a
-- head ({sale:ID}:head) and shards, and a classic sale's one shard is that
-- same {sale:ID}:sale. A hash there with a 'shard' field is such a shard
-- (of a sale being created, whose head comes last): not legacy.
-- KEYS[1] head hash, KEYS[2] legacy hash
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
local h = redis.call('HGETALL', KEYS[2])
if #h == 0 then
  return {'none'}
end
local f = {}
for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
if f['shard'] then
  return {'none'}
end
if tonumber(f['shards'] or '1') > 1 then
  redis.call('RENAME', KEYS[2], KEYS[1])
  return {'migrated', 'sharded'}
end
-- A classic sale: the hash stays as its shard 0; the head gets the
-- configuration and the end, without the pool's counters.
local pool = {remaining = true, reserved = true, paid = true, expired = true, orders = true,
  paid_cents = true, pool_released = true, returned = true}
local head = {}
for i = 1, #h, 2 do
  if not pool[h[i]] then
    head[#head + 1] = h[i]
    head[#head + 1] = h[i + 1]
  end
end
head[#head + 1] = 'shards'
head[#head + 1] = '1'
redis.call('HSET', KEYS[1], unpack(head))
redis.call('HSET', KEYS[2], 'shard', '0', 'shards', '1')
if f['ended'] == '1' then
  -- Its end took the pool (remaining 0, unsold): collected, in today's terms.
  redis.call('HSET', KEYS[2], 'collected', '1')
end
return {'migrated', 'classic'}
