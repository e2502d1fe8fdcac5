-- enter.lua: one user enters the draw of one slice of a draw-mode sale.
-- KEYS[1] entrants of the slice (set)   KEYS[2] results (hash user → "slice|status|order|reason")
-- KEYS[3] pending slices (sorted set: slice → slice)   KEYS[4] held draws (hash slice → winners)
-- ARGV[1] user   ARGV[2] slice   ARGV[3] cap   ARGV[4] time to live (ms)
-- Returns {"entered"} | {"already", result} | {"full"} | {"closed"}.
local user, slice = ARGV[1], ARGV[2]
if redis.call('HEXISTS', KEYS[4], slice) == 1 then
  -- The slice was drawn already (this node's clock is behind the drawer's).
  return {'closed'}
end
local prev = redis.call('HGET', KEYS[2], user)
if prev and string.sub(prev, 1, #slice + 1) == slice .. '|' then
  return {'already', prev}
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return {'full'}
end
redis.call('SADD', KEYS[1], user)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('HSET', KEYS[2], user, slice .. '|entered||')
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], slice, slice)
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return {'entered'}
