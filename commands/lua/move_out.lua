-- Moves units out of one shard of a sharded sale (docs/sharding.md): the
-- debit half of a move, in one step with its record and its StockMoved. The
-- credit to the recipient follows (credit.lua, or purchase.lua for a pull);
-- until the mover has seen it applied, the move stays in this shard's moves
-- hash, where the sweeper finds it if the mover died, and credits it. The
-- recipient applies a move id once, so crediting twice is harmless.
-- The quantity is decided here, so the caller sends the event's bytes around
-- it: ARGV[6] .. quantity .. ARGV[7].
-- KEYS[1] donor shard hash, KEYS[2] donor moves hash, KEYS[3] donor outbox
-- ARGV[1] now ms, ARGV[2] move id, ARGV[3] recipient shard, ARGV[4] the
-- fewest units worth moving, ARGV[5] the most, ARGV[6] StockMoved envelope
-- before its quantity, ARGV[7] after it
local s = redis.call('HMGET', KEYS[1], 'remaining', 'ended')
if not s[1] then
  return {'not_found'}
end
-- A closed shard gives nothing: the end collects its pool (end_sale.go).
if s[2] == '1' then
  return {'ended'}
end
local remaining = tonumber(s[1])
local need = tonumber(ARGV[4])
if remaining < need or remaining <= 0 then
  return {'short', remaining}
end
local take = math.min(remaining, tonumber(ARGV[5]))
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3] .. ' ' .. take .. ' ' .. ARGV[1]) == 0 then
  return {'duplicate'}
end
redis.call('HINCRBY', KEYS[1], 'remaining', -take)
redis.call('HINCRBY', KEYS[1], 'moved_out', take)
redis.call('XADD', KEYS[3], '*', '1', ARGV[6] .. take .. ARGV[7])
return {'moved', take, remaining - take}
