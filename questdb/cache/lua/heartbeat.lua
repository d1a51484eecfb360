-- The invalidation consumer's heartbeat. KEYS: heartbeat. ARGV: epoch, seen_ms ("" to only read the time),
-- position lsn, backlog, the cache's channel.
-- seen_ms means: every change committed before this Redis time has been invalidated. A new seen_ms is also
-- published on the channel ("B<epoch> <seen_ms> <Redis time in ms>"), after the invalidations it covers.
-- Returns {1 if the heartbeat of this epoch is still there else 0, Redis time in ms}. A 0 means Redis lost
-- data (flush, restart, failover, eviction) or someone asked for a reset: the consumer then starts a new epoch.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return {0, now_ms} end
if ARGV[2] ~= '' then
  local seen = tonumber(redis.call('HGET', KEYS[1], 'seen_ms') or '0')
  if tonumber(ARGV[2]) > seen then seen = tonumber(ARGV[2]) end
  redis.call('HSET', KEYS[1], 'seen_ms', string.format('%d', seen), 'lsn', ARGV[3], 'backlog', ARGV[4],
    'beat_ms', string.format('%d', now_ms))
  redis.call('PUBLISH', ARGV[5], string.format('B%s %d %d', ARGV[1], seen, now_ms))
end
return {1, now_ms}
