-- fill.lua for many keys at once, without fill locks: each value is set only if its stamp is unchanged.
-- KEYS: value1, stamp1, value2, stamp2, ... ARGV: ttl, expected stamp1, payload1, expected stamp2, payload2, ...
-- Returns 1 (filled) or 0 (refused: invalidated since it was read) per key.
local filled = {}
for i = 1, #KEYS, 2 do
  local expected, payload = ARGV[i + 1], ARGV[i + 2]
  if (redis.call('GET', KEYS[i + 1]) or '') == expected then
    redis.call('SET', KEYS[i], payload, 'EX', ARGV[1])
    filled[#filled + 1] = 1
  else
    filled[#filled + 1] = 0
  end
end
return filled
