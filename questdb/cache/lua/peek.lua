-- The hit path's read: the value only while the cache is trusted. KEYS: value, heartbeat. ARGV: max staleness (ms).
-- Returns the value, false for a miss, or -1 when the heartbeat is missing or older than the bound.
local seen = redis.call('HGET', KEYS[2], 'seen_ms')
if not seen then return -1 end
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(seen) > tonumber(ARGV[1]) then
  return -1
end
return redis.call('GET', KEYS[1])
