-- One round trip per lookup. KEYS: value, stamp, lock. ARGV: lock ttl (ms), lock token.
-- A hit returns {value}; a miss returns {false, stamp, 1 if this reader took the fill lock}.
local value = redis.call('GET', KEYS[1])
if value then return {value} end
local stamp = redis.call('GET', KEYS[2]) or ''
local locked = redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[1]) and 1 or 0
return {false, stamp, locked}
