-- Start a new epoch after Redis lost data or a reset: KEYS: heartbeat. ARGV: epoch, floor lsn, seen_ms, position lsn,
-- the cache's channel.
-- Every fill reads at or after the floor (a WAL position read after the loss), so a lagging replica cannot put back
-- a row that a change invalidated before the loss (its stamp is gone). Each process's local layer empties itself.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'floor', ARGV[2], 'seen_ms', ARGV[3], 'lsn', ARGV[4], 'backlog', '0')
redis.call('PUBLISH', ARGV[5], 'F')
return 1
