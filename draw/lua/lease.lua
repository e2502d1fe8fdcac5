-- lease.lua: takes or renews the drawer's lease of one sale.
-- KEYS[1] the lease   ARGV[1] owner   ARGV[2] TTL (ms)
-- Returns 1 when ARGV[1] holds the lease now, 0 when another drawer does.
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] or not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
