-- Compare-and-set, then release the fill lock if this reader holds it.
-- KEYS: value, stamp, lock, heartbeat. ARGV: expected stamp ("" for none), payload, ttl, lock token ("" for none),
-- the heartbeat's epoch at the miss. A new epoch means Redis lost data (or was reset) since the miss: refuse.
local filled = 0
if (redis.call('GET', KEYS[2]) or '') == ARGV[1] and redis.call('HGET', KEYS[4], 'epoch') == ARGV[5] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  filled = 1
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
return filled
