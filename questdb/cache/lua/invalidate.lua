-- KEYS: value1, stamp1, value2, stamp2, ... ARGV: lsn, nonce, stamp ttl, the cache's channel.
-- Every stamp gets the new nonce (a fill that read the old stamp is refused) and keeps the highest WAL position any
-- invalidation reported. The values' names are published on the channel in the same atomic step, for the layer each
-- process keeps in front of Redis (questdb/cache/local.py).
local lsn = tonumber(ARGV[1])
local stamp = ARGV[1] .. ':' .. ARGV[2]
local values = {}
for i = 1, #KEYS, 2 do
  local old = redis.call('GET', KEYS[i + 1])
  local old_lsn = old and tonumber(string.match(old, '^(%d+):'))
  if old_lsn and old_lsn > lsn then
    redis.call('SET', KEYS[i + 1], string.format('%d:%s', old_lsn, ARGV[2]), 'EX', ARGV[3])
  else
    redis.call('SET', KEYS[i + 1], stamp, 'EX', ARGV[3])
  end
  redis.call('DEL', KEYS[i])
  values[#values + 1] = KEYS[i]
end
redis.call('PUBLISH', ARGV[4], 'K' .. cjson.encode(values))
return #KEYS / 2
