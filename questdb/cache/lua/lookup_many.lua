-- Many lookups in one round trip, without fill locks. KEYS: heartbeat, value1, stamp1, value2, stamp2, ...
-- ARGV: max staleness (ms). Returns {trusted (1 or 0), epoch, floor, value1, stamp1, value2, stamp2, ...};
-- while untrusted (the heartbeat is missing or older than the bound) every value is false: read the database
-- (at or after the stamps) and fill nothing.
local beat = redis.call('HMGET', KEYS[1], 'seen_ms', 'epoch', 'floor')
local trusted = 0
if beat[1] then
  local now = redis.call('TIME')
  if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(beat[1]) <= tonumber(ARGV[1]) then
    trusted = 1
  end
end
local reply = {trusted, beat[2] or '', beat[3] or '0'}
for i = 2, #KEYS, 2 do
  reply[#reply + 1] = trusted == 1 and redis.call('GET', KEYS[i]) or false
  reply[#reply + 1] = redis.call('GET', KEYS[i + 1]) or ''
end
return reply
