-- hold.lua: records the draw of one slice, once: the winners, every
-- entrant's result, and the DrawHeld event in the draw outbox, atomically.
-- KEYS[1] entrants of the slice (set)   KEYS[2] results (hash)   KEYS[3] held draws (hash)
-- KEYS[4] the draw outbox (stream)
-- ARGV[1] slice   ARGV[2] number of entrants the draw saw   ARGV[3] the DrawHeld envelope
-- ARGV[4] time to live (ms)   ARGV[5..] the winners
-- Returns {"held", winners...} | {"already", winners...} | {"changed"} (an entry
-- came in after the drawer read the entrants: read them again and draw again).
local slice = ARGV[1]
local held = redis.call('HGET', KEYS[3], slice)
if held then
  local out = {'already'}
  for w in string.gmatch(held, '[^\n]+') do out[#out + 1] = w end
  return out
end
if redis.call('SCARD', KEYS[1]) ~= tonumber(ARGV[2]) then
  return {'changed'}
end
local won = {}
local out = {'held'}
for i = 5, #ARGV do
  won[ARGV[i]] = true
  out[#out + 1] = ARGV[i]
end
redis.call('HSET', KEYS[3], slice, table.concat(ARGV, '\n', 5))
redis.call('PEXPIRE', KEYS[3], ARGV[4])
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if won[user] then
    redis.call('HSET', KEYS[2], user, slice .. '|won||')
  else
    redis.call('HSET', KEYS[2], user, slice .. '|lost||')
  end
end
redis.call('XADD', KEYS[4], '*', '1', ARGV[3])
return out
