-- KEYS: value1, stamp1, value2, stamp2, ... ARGV: lsn, nonce, stamp ttl.
-- The stamp keeps the highest WAL position any invalidation reported.
for i = 1, #KEYS, 2 do
  local old = redis.call('GET', KEYS[i + 1])
  local lsn = tonumber(ARGV[1])
  if old then
    local old_lsn = tonumber(string.match(old, '^(%d+):'))
    if old_lsn and old_lsn > lsn then lsn = old_lsn end
  end
  redis.call('SET', KEYS[i + 1], string.format('%d:%s', lsn, ARGV[2]), 'EX', ARGV[3])
  redis.call('DEL', KEYS[i])
end
return #KEYS / 2
