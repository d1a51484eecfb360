"""Invalidation driven by the database's commits: the outbox consumer, its heartbeat, and its status.

Triggers (questdb/migrations/0003_cache_changes.py, 0004) write every committed change of a
cached table into `cache_changes`, in the writer's own transaction, whoever the writer is.
The consumer (`manage.py invalidate_cache`, one leader at a time under a PostgreSQL advisory
lock) repeats, every CACHE_INVALIDATION_POLL seconds:

1. t0 = Redis's clock (the one clock every process compares against), read in the previous
   round trip to Redis;
2. one statement reads the oldest batch of outbox rows with the primary's WAL insert position
   (one snapshot, so that position is at or after every returned change's commit), the rows
   that embed them (`CHANGE_EMBEDS` in an app's `keys.py`: a changed user's sessions) and the
   outbox marker, and deletes the previous batch, whose invalidation Redis has confirmed (by id:
   ids commit out of order, so there is no "id > last seen" cursor);
3. the rows become cache keys through the apps' own key functions (`CHANGE_KEYS` in each
   app's `keys.py`);
4. one Redis round trip: the invalidations (stamps at that position), then the heartbeat:
   when the batch was not full, seen_ms = t0, meaning every change committed before t0 has
   been invalidated. A Redis failure leaves the rows in the outbox; a crash before their
   delete makes the next leader invalidate them again, which is harmless.

Every lookup reads the heartbeat in the same Lua script as the value: no heartbeat, or one
older than CACHE_MAX_STALENESS, and the cache is not trusted (the lookup reads the
database and does not fill). Whatever fails (the consumer, Redis, the network between a
worker and Redis), a cached answer is never more than CACHE_MAX_STALENESS behind.

The heartbeat also holds an epoch and a floor WAL position. When it disappears (Redis
flushed, restarted without persistence, failed over, evicted it; or a reset was asked
for), the consumer deletes every cached value and starts a new epoch whose floor is the
primary's position read after the loss: fills read at or after it, so a lagging replica
cannot put back a row whose invalidation stamp was lost; a fill that missed in an older
epoch is refused.

The outbox is UNLOGGED (0004): crash recovery, a promoted standby or a restored base backup
leave it empty, and with it the marker row that each epoch writes into `cache_capture_marker`
(unlogged too) and keeps in the heartbeat. A batch that reads no marker, or another one, starts
a new epoch the same way: changes may have been lost, so nothing cached before is kept.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from importlib import import_module

import psycopg
from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils.module_loading import module_has_submodule
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from redis.exceptions import NoScriptError, RedisError

from questdb.cache.keys import SHAPE_VERSION, Key
from questdb.cache.store import _SCRIPTS, LUA, STAMP_TTL, changes_channel, heartbeat_key, lookup_cache
from questdb.db.direct import pg_connect
from questdb.db.router import format_lsn, parse_lsn

logger = logging.getLogger(__name__)

# An arbitrary constant (bigint) naming "questdb cache invalidation leader" among advisory locks
# (migrations use ...001, roles ...002).
LEADER_LOCK_ID = 727_374_001_000_003
KEYS_MODULE = "keys"  # where an app declares CHANGE_KEYS: {table: rows -> keys}, and CHANGE_EMBEDS
INVALIDATE_CHUNK = 500  # keys per invalidation script call
# Commit-to-Redis lag buckets (seconds), as exported at /metrics.
LAG_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
REPLICA_WAIT_MS = 500  # how long an invalidation batch waits for CACHE_INVALIDATION_REPLICAS Redis replicas
# The consumer vacuums the outbox itself after deleting this many rows: its deleted rows would otherwise pile up
# wherever autovacuum is off or behind, and every poll would walk them. Only the table's owner (or a member of its
# role) may: another role's VACUUM is skipped with a warning, so the consumer asks once and says so.
VACUUM_EVERY = 20_000
CAN_VACUUM_SQL = (
    "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = 'cache_changes'::regclass"
)
BACKLOG_LIMIT = 1_000_000  # the backlog is counted up to this many rows (a count must stay cheap)

# One statement, one round trip: delete the rows whose invalidation Redis confirmed, read the next batch, the
# rows that embed its rows (CHANGE_EMBEDS) and the outbox's marker. One snapshot: every row it returns committed
# before the WAL position it reads, and the marker vouches for exactly the outbox it read. It returns at least
# one row (the head: id NULL when the batch is empty).
BATCH_SQL = """
    WITH done AS (DELETE FROM cache_changes WHERE id = ANY(%(done)s::bigint[])),
    batch AS (
        SELECT id, table_name, op, rows, extract(epoch FROM created_at)::float8 AS created
        FROM cache_changes WHERE id <> ALL(%(done)s::bigint[]) ORDER BY id LIMIT %(limit)s
    )
    SELECT b.id, b.table_name, b.op, b.rows, b.created, pg_current_wal_insert_lsn()::text,
        (SELECT token FROM cache_capture_marker LIMIT 1)
    FROM (SELECT 1) head LEFT JOIN batch b ON true{embeds}
"""
# Rows of another table whose cached payloads embed the batch's changed rows, as changes of that table.
EMBED_SQL = """
    UNION ALL
    SELECT NULL, '{table}', 'EMBEDS', jsonb_agg(jsonb_build_object({columns})), NULL, NULL, NULL
    FROM {table} e WHERE e.{column} IN (
        SELECT (r ->> 'id')::{type} FROM batch, jsonb_array_elements(batch.rows) r WHERE batch.table_name = '{changed}'
    ) HAVING count(*) > 0
"""
MARKER_SQL = "WITH gone AS (DELETE FROM cache_capture_marker) INSERT INTO cache_capture_marker (token) VALUES (%s)"
BACKLOG_SQL = f"SELECT count(*) FROM (SELECT 1 FROM cache_changes LIMIT {BACKLOG_LIMIT}) pending"
LSN_SQL = "SELECT pg_current_wal_insert_lsn()::text"


def lag_key() -> str:
    """The commit-to-Redis lag histogram (a hash: one counter per bucket, count, sum); no TTL."""
    return f"{settings.CACHE_KEY_PREFIX}:invalidation:lag"


def value_pattern() -> str:
    return f"{settings.CACHE_KEY_PREFIX}:v{SHAPE_VERSION}:*"


def discover_change_keys() -> dict[str, list[Callable[[list[dict]], Iterable[Key]]]]:
    """Every installed app's CHANGE_KEYS, merged by table (several apps may cache rows of one table)."""
    handlers: dict[str, list[Callable]] = {}
    for app_config in apps.get_app_configs():
        if module_has_submodule(app_config.module, KEYS_MODULE):
            module = import_module(f"{app_config.name}.{KEYS_MODULE}")
            for table, handler in getattr(module, "CHANGE_KEYS", {}).items():
                handlers.setdefault(table, []).append(handler)
    return handlers


def discover_change_embeds() -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """Every installed app's CHANGE_EMBEDS as (changed table, embedding table, column, type, key columns)."""
    embeds = []
    for app_config in apps.get_app_configs():
        if module_has_submodule(app_config.module, KEYS_MODULE):
            module = import_module(f"{app_config.name}.{KEYS_MODULE}")
            for changed, (table, column, type_, columns) in getattr(module, "CHANGE_EMBEDS", {}).items():
                embeds.append((changed, table, column, type_, tuple(columns)))
    return embeds


def batch_sql(embeds) -> str:
    # Names come from the apps' own declarations (code, not input), never from the database.
    parts = [
        EMBED_SQL.format(
            table=table,
            column=column,
            type=type_,
            changed=changed,
            columns=", ".join(f"'{name}', e.{name}" for name in columns),
        )
        for changed, table, column, type_, columns in embeds
    ]
    return BATCH_SQL.format(embeds="".join(parts))


class ResetNeeded(Exception):
    """The heartbeat of this epoch is gone: Redis lost data, or a reset was asked for."""


class Consumer:
    """The outbox consumer. `run(stop)` leads or follows until `stop` is set."""

    def __init__(
        self, *, redis_client=None, database: str = DEFAULT_DB_ALIAS, log: Callable[[str], None] | None = None
    ):
        if redis_client is None:
            from django_redis import get_redis_connection

            redis_client = get_redis_connection("default")
        self.redis = redis_client
        self.database = database
        self.log = log or logger.info
        self.handlers = discover_change_keys()
        self.batch_sql = batch_sql(discover_change_embeds())
        scripts = {**_SCRIPTS, **{name: (LUA / f"{name}.lua").read_text() for name in ("heartbeat", "epoch")}}
        self.scripts = {name: self.redis.register_script(source) for name, source in scripts.items()}
        self.epoch: bytes | None = None
        self.marker: bytes | None = None  # the outbox marker this epoch vouches for (see lead)
        self.leading = False
        self.position = 0  # WAL position of the last invalidated batch
        self.backlog = 0
        self.batches = 0
        self.lags: list[float] = []  # commit-to-Redis lags observed since the last heartbeat

    # -- leadership ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        settings_dict = connections[self.database].settings_dict
        announced_follow = False
        while not stop.is_set():
            conn = None
            try:
                conn = pg_connect(
                    settings_dict,
                    application_name="questdb-invalidate",
                    connect_timeout=settings.CACHE_INVALIDATION_RETRY * 4,
                )
                while not stop.is_set():
                    if conn.execute("SELECT pg_try_advisory_lock(%s)", [LEADER_LOCK_ID]).fetchone()[0]:
                        break
                    if not announced_follow:
                        self.log(
                            "another consumer leads; following (retrying the leadership every "
                            f"{settings.CACHE_INVALIDATION_RETRY:g}s)"
                        )
                        announced_follow = True
                    stop.wait(settings.CACHE_INVALIDATION_RETRY)
                else:
                    return
                self.leading, announced_follow = True, False
                self.log(f"leading (advisory lock {LEADER_LOCK_ID})")
                self.lead(conn, stop)
            except Exception as error:  # the database or Redis went away: retry, nothing is lost
                if not _is_transient(error):
                    raise
                self.log(f"invalidation interrupted ({error.__class__.__name__}: {_first_line(error)}); retrying")
                stop.wait(settings.CACHE_INVALIDATION_RETRY)
            finally:
                self.leading = False
                if conn is not None:
                    conn.close()

    def lead(self, conn: psycopg.Connection, stop: threading.Event) -> None:
        # Losing a delete in a crash only means invalidating those rows again: no need to wait for its flush.
        conn.execute("SET synchronous_commit = off")
        # The batch statement is prepared once (prepare=True below) and planned once: planning it took twice as long
        # as running it on an empty outbox, and PostgreSQL's own choice kept planning it at every poll. Django's
        # connection parameters turn psycopg's statement preparation off (None); this session is the consumer's own.
        conn.prepare_threshold = 5
        conn.execute("SET plan_cache_mode = force_generic_plan")
        self.epoch, self.marker = self.redis.hmget(heartbeat_key(), "epoch", "marker")
        invalidated: list[int] = []  # outbox rows whose invalidation Redis confirmed, deleted with the next read
        deleted = 0  # since the last vacuum
        vacuums = self.can_vacuum(conn)
        alive, t0 = self.beat()
        while not stop.is_set():
            if not alive:
                self.new_epoch(conn)
                alive, t0 = self.beat()
                continue
            polled = time.monotonic()
            rows = conn.execute(
                self.batch_sql, {"done": invalidated, "limit": settings.CACHE_INVALIDATION_BATCH}, prepare=True
            ).fetchall()
            head = next(row for row in rows if row[5] is not None)  # not an embedding row
            head_lsn, marker = parse_lsn(head[5]), head[6]
            if self.marker is None or marker is None or marker.encode() != self.marker:
                # The unlogged outbox was emptied (crash recovery, a promoted standby, a restored base backup) or
                # this epoch never vouched for it: changes may have been lost, so nothing cached is trusted.
                self.log("the change outbox is not the one this cache epoch has read (crash recovery, failover)")
                self.new_epoch(conn)
                invalidated = []
                alive, t0 = self.beat()
                continue
            changes = [row for row in rows if row[0] is not None]
            full = len(changes) >= settings.CACHE_INVALIDATION_BATCH
            keys, lsn = [], self.position
            if changes:
                lsn = head_lsn
                if any(row[2] == "TRUNCATE" for row in changes):
                    self.reset(conn)
                keys = self.keys_for(rows)
            self.backlog = conn.execute(BACKLOG_SQL).fetchone()[0] if full else 0
            # The batch was read after t0; when it was not full, every change committed before t0 is in it.
            alive, t_next = self.beat(keys, lsn, seen_ms="" if full else str(t0))
            done = time.time()
            self.lags.extend(done - row[4] for row in changes)
            deleted += len(invalidated)
            invalidated = [row[0] for row in changes]
            self.position, t0 = lsn, t_next
            if vacuums and deleted >= VACUUM_EVERY:
                conn.execute("VACUUM cache_changes")
                deleted = 0
            self.batches += 1 if changes else 0
            if not full:
                # Poll every CACHE_INVALIDATION_POLL from the start of the last poll, not that long after its end:
                # a change waits one interval at most, however long the batch took under load.
                stop.wait(max(0.0, settings.CACHE_INVALIDATION_POLL - (time.monotonic() - polled)))

    def can_vacuum(self, conn: psycopg.Connection) -> bool:
        if conn.execute(CAN_VACUUM_SQL).fetchone()[0]:
            return True
        self.log(
            "this role does not own cache_changes, so it cannot vacuum it: autovacuum alone keeps it small "
            "(see docs/operations.md, 'The outbox grows')"
        )
        return False

    def beat(self, keys: list[Key] = (), lsn: int = 0, *, seen_ms: str = "") -> tuple[int, int]:
        """One round trip: invalidate `keys`, then publish the heartbeat (and the lag observed so far).

        Returns (1 if this epoch's heartbeat is still there else 0, Redis time in ms after the invalidations).
        """
        if keys and settings.CACHE_INVALIDATION_REPLICAS:
            self.invalidate(keys, lsn)  # waits for the Redis replicas before the heartbeat may move
            keys = ()
        try:
            reply, position = self._beat(keys, lsn, seen_ms, with_lags=True)
        except NoScriptError:
            # Redis lost its scripts (a restart: the heartbeat is gone too). Nothing ran that needs them; the lag
            # counters of that attempt did, so they are not sent again.
            for script in self.scripts.values():
                self.redis.script_load(script.script)
            reply, position = self._beat(keys, lsn, seen_ms, with_lags=False)
        self.lags = []
        return reply[position]

    def _beat(self, keys, lsn: int, seen_ms: str, *, with_lags: bool):
        # EVALSHA straight on the pipeline: a Script call there makes redis-py send SCRIPT EXISTS first, a second
        # round trip per batch.
        pipe = self.redis.pipeline(transaction=False)
        if keys:
            self.invalidate(keys, lsn, client=pipe)
        position = len(pipe)
        heartbeat_args = [self.epoch or "", seen_ms, lsn or self.position, self.backlog, changes_channel()]
        pipe.evalsha(self.scripts["heartbeat"].sha, 1, heartbeat_key(), *heartbeat_args)
        if self.lags and with_lags:
            self._add_lags(pipe)
        return pipe.execute(), position

    def keys_for(self, rows) -> list[Key]:
        keys: list[Key] = []
        for _id, table, op, changed, _created, _lsn, _marker in rows:
            if op == "TRUNCATE" or changed is None:
                continue
            for handler in self.handlers.get(table, ()):
                keys.extend(handler(changed))
        return list(dict.fromkeys(keys))

    def invalidate(self, keys: list[Key], lsn: int, *, client=None) -> None:
        """Invalidate `keys` with stamps at `lsn`; queued on `client` (a pipeline) when one is given."""
        nonce, channel = uuid.uuid4().hex, changes_channel()
        for start in range(0, len(keys), INVALIDATE_CHUNK):
            chunk = keys[start : start + INVALIDATE_CHUNK]
            flat = [name for key in chunk for name in (key.value, key.stamp)]
            if client is None:
                self.scripts["invalidate"](keys=flat, args=[lsn, nonce, STAMP_TTL, channel])
            else:  # a pipeline: see _beat
                client.evalsha(self.scripts["invalidate"].sha, len(flat), *flat, lsn, nonce, STAMP_TTL, channel)
        replicas = settings.CACHE_INVALIDATION_REPLICAS
        if replicas and keys and client is None:
            # Redis replicates asynchronously: a failover could lose invalidations its master confirmed.
            # The rows stay in the outbox until enough replicas have them too.
            acknowledged = self.redis.execute_command("WAIT", replicas, REPLICA_WAIT_MS)
            if acknowledged < replicas:
                raise RedisError(f"{acknowledged} of {replicas} Redis replicas confirmed the invalidations")

    def _add_lags(self, pipe) -> None:
        counts = [0] * (len(LAG_BUCKETS) + 1)
        for lag in self.lags:
            counts[bisect.bisect_left(LAG_BUCKETS, max(0.0, lag))] += 1
        for index, count in enumerate(counts):
            if count:
                pipe.hincrby(lag_key(), _bucket_field(index), count)
        pipe.hincrby(lag_key(), "count", len(self.lags))
        pipe.hincrbyfloat(lag_key(), "sum", sum(max(0.0, lag) for lag in self.lags))

    # -- Redis lost data, or a reset --------------------------------------------------------
    def new_epoch(self, conn: psycopg.Connection) -> None:
        """Drop every cached value and start a new epoch whose fills read at or after the current WAL position."""
        self.reset(conn)
        self.log(f"new cache epoch {self.epoch.decode()} (floor {format_lsn(self.position)})")

    def reset(self, conn: psycopg.Connection) -> None:
        self.redis.delete(heartbeat_key())  # untrusted everywhere (no hits, no fills) while values go
        deleted = 0
        for names in _chunks(self.redis.scan_iter(value_pattern(), count=1000), 1000):
            deleted += self.redis.delete(*names)
        now_ms = _redis_ms(self.redis.time())
        floor = parse_lsn(conn.execute(LSN_SQL).fetchone()[0])
        self.epoch = uuid.uuid4().hex.encode()
        self.scripts["epoch"](keys=[heartbeat_key()], args=[self.epoch, floor, now_ms, floor, changes_channel()])
        # The outbox this epoch reads from now on: a crash that empties it takes the marker too (both unlogged).
        # Until both sides hold the same marker, the next batch starts another epoch.
        marker = uuid.uuid4().hex
        conn.execute(MARKER_SQL, [marker])
        self.redis.hset(heartbeat_key(), "marker", marker)
        self.marker = marker.encode()
        self.position = floor
        if deleted:
            self.log(f"dropped {deleted} cached values")


def request_reset(redis_client=None) -> None:
    """Ask the consumer to drop every cached value and start a new epoch (after a restore, for example)."""
    if redis_client is None:
        from django_redis import get_redis_connection

        redis_client = get_redis_connection("default")
    redis_client.delete(heartbeat_key())


# -- status, for /readyz and /metrics ----------------------------------------------------------
def status(redis_client) -> dict:
    """What the heartbeat says: trusted or not, its age, the consumer's position and backlog."""
    pipe = redis_client.pipeline(transaction=False)
    pipe.hgetall(heartbeat_key())
    pipe.time()
    beat, now = pipe.execute()
    if not beat or b"seen_ms" not in beat:
        return {"trusted": False, "reason": "no invalidation heartbeat (consumer not running, or Redis lost data)"}
    age = max(0.0, (_redis_ms(now) - int(beat[b"seen_ms"])) / 1000)
    report = {
        "trusted": age <= settings.CACHE_MAX_STALENESS,
        "heartbeat_age_seconds": round(age, 3),
        "max_staleness_seconds": settings.CACHE_MAX_STALENESS,
        "position": format_lsn(int(beat.get(b"lsn", b"0"))),
        "backlog": int(beat.get(b"backlog", b"0")),
        "floor": format_lsn(int(beat.get(b"floor", b"0"))),
    }
    if not report["trusted"]:
        report["reason"] = "invalidation is behind the database by more than CACHE_MAX_STALENESS"
    return report


def lag_histogram(redis_client) -> tuple[list[tuple[str, float]], float, float]:
    """The lag histogram as cumulative (le, count) pairs, the sum and the count."""
    raw = redis_client.hgetall(lag_key())
    buckets, running = [], 0.0
    for index, bound in enumerate((*LAG_BUCKETS, math.inf)):
        running += float(raw.get(_bucket_field(index).encode(), 0))
        buckets.append(("+Inf" if bound == math.inf else f"{bound:g}", running))
    return buckets, float(raw.get(b"sum", 0)), float(raw.get(b"count", 0))


def _bucket_field(index: int) -> str:
    return f"le_{LAG_BUCKETS[index]:g}" if index < len(LAG_BUCKETS) else "le_inf"


def _redis_ms(redis_time) -> int:
    seconds, micros = redis_time
    return int(seconds) * 1000 + int(micros) // 1000


def _chunks(iterable, size: int):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _is_transient(error: Exception) -> bool:
    return isinstance(error, (psycopg.Error, RedisError, OSError))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


class InvalidationCollector:
    """The invalidation consumer's figures, read from Redis at scrape time (the consumer is another process).

    Every app instance exports the same series: aggregate them with max(), not sum().
    """

    def collect(self):
        client = lookup_cache.client()
        if client is None:
            return
        try:
            report = status(client)
            buckets, total, _count = lag_histogram(client)
        except Exception:  # a scrape reports what it can
            return
        trusted = GaugeMetricFamily("questdb_cache_trusted", "1 while lookups may trust the cache, else 0.")
        trusted.add_metric([], 1.0 if report["trusted"] else 0.0)
        yield trusted
        if "heartbeat_age_seconds" in report:
            age = GaugeMetricFamily(
                "questdb_cache_invalidation_heartbeat_age_seconds",
                "Redis time since the last moment before which every committed change is invalidated.",
            )
            age.add_metric([], report["heartbeat_age_seconds"])
            yield age
            position = GaugeMetricFamily(
                "questdb_cache_invalidation_position_bytes", "WAL position of the last invalidated batch."
            )
            position.add_metric([], float(parse_lsn(report["position"])))
            yield position
            backlog = GaugeMetricFamily(
                "questdb_cache_invalidation_backlog", "Committed changes waiting in the outbox at the last drain."
            )
            backlog.add_metric([], report["backlog"])
            yield backlog
        lag = HistogramMetricFamily(
            "questdb_cache_invalidation_lag_seconds", "From a change (trigger time, before its commit) to Redis."
        )
        lag.add_metric([], buckets, sum_value=total)
        yield lag


# Exported beside the process's own metrics by /metrics (questdb/api/probes.py).
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(InvalidationCollector())
