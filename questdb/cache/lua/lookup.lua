-- One round trip per lookup. KEYS: value, stamp, lock, heartbeat. ARGV: lock ttl (ms), lock token, max staleness (ms).
-- A hit returns {value}; a miss returns {false, stamp, 1 if this reader took the fill lock, epoch, floor lsn}.
-- Untrusted (the heartbeat is missing or older than the bound) returns {false, stamp, -1, epoch, floor}: read the
-- database (at or after the stamp, so a writer still reads its write) and never fill.
local beat = redis.call('HMGET', KEYS[4], 'seen_ms', 'epoch', 'floor')
local trusted = false
if beat[1] then
  local now = redis.call('TIME')
  trusted = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(beat[1]) <= tonumber(ARGV[3])
end
if trusted then
  local value = redis.call('GET', KEYS[1])
  if value then return {value} end
end
local stamp = redis.call('GET', KEYS[2]) or ''
if not trusted then return {false, stamp, -1, beat[2] or '', beat[3] or '0'} end
local locked = redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[1]) and 1 or 0
return {false, stamp, locked, beat[2] or '', beat[3] or '0'}
