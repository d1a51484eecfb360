-- fill.lua for many keys at once, without fill locks: each value is set only if its stamp is unchanged.
-- KEYS: heartbeat, value1, stamp1, value2, stamp2, ... ARGV: ttl, epoch at the miss, expected stamp1, payload1,
-- expected stamp2, payload2, ... Returns 1 (filled) or 0 (refused: invalidated since it was read, or Redis
-- lost data since the miss: a new epoch) per key.
local filled = {}
local same_epoch = redis.call('HGET', KEYS[1], 'epoch') == ARGV[2]
for i = 2, #KEYS, 2 do
  local expected, payload = ARGV[i + 1], ARGV[i + 2]
  if same_epoch and (redis.call('GET', KEYS[i + 1]) or '') == expected then
    redis.call('SET', KEYS[i], payload, 'EX', ARGV[1])
    filled[#filled + 1] = 1
  else
    filled[#filled + 1] = 0
  end
end
return filled
