"""The lookup cache store: fills, invalidation and degradation.

Value keys (`questdb.cache.keys.Key`) hold the serialized payload (JSON bytes,
served as is on a hit). Beside each value key lives a stamp that every
invalidation replaces. The Lua scripts are in `lua/`.

The guarantees and how they are kept:
- After commit (`transaction.on_commit`), an invalidation deletes the value and
  writes a new stamp holding the primary's WAL position after the commit.
- No stale fill: a reader notes the stamp when it misses and fills only if the
  stamp is unchanged (an atomic compare-and-set in Lua). A reader that read the
  database before a write cannot put the old value back after it.
- No fill from a stale replica: the reader's database read is routed to a
  replica that has replayed the stamp's WAL position, or to the primary.
- No stampede: one reader per key takes a short lock and fills; the others wait
  briefly for its value.
- Trust: every change committed by any writer is invalidated by the consumer
  (`questdb.cache.invalidation`), which keeps a heartbeat in Redis. Each lookup
  reads it in the same script as the value: when it is missing or older than
  CACHE_MAX_STALENESS, the cache is not trusted and the lookup is answered from
  the database without filling. A fill is refused when the heartbeat's epoch
  changed since the miss (Redis lost data), and reads at or after the epoch's
  floor WAL position.
- In each process, a layer of recently served records answers repeated lookups
  without a round trip (`questdb.cache.local`, which says how it stays exact).
- Degradation: any Redis error turns the cache off for CACHE_RETRY_INTERVAL
  seconds (one log line per interval), the local layer included; lookups go to
  the database meanwhile.
  Invalidations that could not be sent are kept and replayed before this
  process uses Redis again (the consumer sends them too, from the outbox).
"""

import collections
import contextlib
import functools
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from prometheus_client import Counter

from questdb.cache.keys import Key
from questdb.cache.local import FLUSH, LocalCache, channel_name
from questdb.db import router as routing

logger = logging.getLogger(__name__)

STAMP_TTL = 24 * 3600  # far longer than any read can take or any replica can lag
LOCK_TTL_MS = 2000
LOCK_WAIT_SECONDS = 0.5
MAX_PENDING_INVALIDATIONS = 10_000
LUA = Path(__file__).with_name("lua")

EVENTS = Counter("questdb_cache_events", "Lookup cache events by key family.", ["family", "event"])
UNTRUSTED = Counter(
    "questdb_cache_untrusted",
    "Lookups answered from the database because the cache was not trusted (invalidation behind or Redis lost data).",
    ["family"],
)
UNTRUSTED_REPLY = -1

# Read once at import; redis-py sends each by its SHA (EVALSHA) and loads it when Redis does not know it.
_SCRIPTS = {
    name: (LUA / f"{name}.lua").read_text() for name in ("lookup", "lookup_many", "fill", "fill_many", "invalidate")
}
_lock_tokens = itertools.count()


def _lock_token() -> str:
    """Unique among the lock holders of all processes, without a system call per lookup."""
    return f"{os.getpid()}:{next(_lock_tokens)}"


def _stamp_lsn(stamp: bytes | None) -> int:
    if not stamp:
        return 0
    return int(stamp.split(b":", 1)[0])


def heartbeat_key() -> str:
    """The invalidation consumer's heartbeat (a hash: seen_ms, epoch, floor, lsn, backlog); no TTL."""
    return f"{settings.CACHE_KEY_PREFIX}:invalidation"


def changes_channel() -> str:
    """Where invalidations, heartbeats and resets are published (for each process's local layer)."""
    return channel_name(settings.CACHE_KEY_PREFIX)


def _max_staleness_ms() -> int:
    return int(settings.CACHE_MAX_STALENESS * 1000)


@dataclass(frozen=True)
class _Miss:
    """What a lookup that found no value knows: the fill's stamp, epoch, read floor and lock."""

    stamp: bytes
    epoch: bytes
    floor: int  # the WAL position the filling read must have replayed
    lock_token: str  # "" when another reader holds the fill lock
    trusted: bool  # False: the cache is not trusted, so the lookup reads the database and fills nothing


class LookupCache:
    def __init__(self) -> None:
        self._client = None
        self._near: LocalCache | None = None  # the local layer, once the client exists (None: off)
        self._scripts: dict[str, Callable] = {}
        self._down_until = 0.0
        self._last_logged = 0.0
        self._pending: list[Key] = []
        self._pending_overflowed = False
        self._pending_lock = threading.Lock()
        self._connect_lock = threading.Lock()

    # -- connection and degradation --------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(settings.REDIS_URL)

    def client(self):
        """The Redis client, or None while Redis is considered down (or not configured)."""
        if not self.enabled or time.monotonic() < self._down_until:
            return None
        if self._client is None:
            self._connect()
        if (self._pending or self._pending_overflowed) and not self._replay_pending():
            return None
        return self._client

    def _connect(self) -> None:
        from django_redis import get_redis_connection

        with self._connect_lock:  # once per process: threads racing here share one client and one layer
            if self._client is not None:
                return
            client = get_redis_connection("default")
            self._scripts = {name: client.register_script(source) for name, source in _SCRIPTS.items()}
            self._near = _local_layer(client) if settings.CACHE_LOCAL_MAX_BYTES > 0 else None
            self._client = client  # last: a thread that sees it sees the scripts and the layer

    def note_failure(self, error: Exception) -> None:
        if self._near is not None:
            self._near.flush("redis failed")
        now = time.monotonic()
        self._down_until = now + settings.CACHE_RETRY_INTERVAL
        if now - self._last_logged >= settings.CACHE_RETRY_INTERVAL:
            self._last_logged = now
            logger.warning(
                "redis unavailable (%s); serving from the database for %.1fs",
                error.__class__.__name__,
                settings.CACHE_RETRY_INTERVAL,
            )

    def reset(self) -> None:
        """Forget connection state (tests point the cache at another Redis)."""
        if self._near is not None:
            self._near.flush("reset")
        self._client, self._near, self._scripts, self._down_until = None, None, {}, 0.0
        self._pending, self._pending_overflowed = [], False

    # -- reads ---------------------------------------------------------------------
    def near(self, *, allowed: bool = True) -> LocalCache | None:
        """The local layer, when this lookup may use it: not for a caller with a consistency token
        (or one that wrote in this request), whom Redis answers, exactly as without the layer."""
        if self._near is None or not allowed:
            return None
        state = routing.current()
        if state is not None and (state.min_lsn or state.wrote):
            return None
        return self._near

    def get_or_fill(self, key: Key, load: Callable[[], bytes | None]) -> bytes | None:
        """The cached payload for `key`, else `load()` from the database (and cache it when that is safe)."""
        client = self.client()
        if client is None or connections[DEFAULT_DB_ALIAS].in_atomic_block:
            # Inside a transaction the database may hold uncommitted rows: never cache them.
            return load()
        near = self.near()
        local = self._local_hit(near, key)
        if local is not None:
            return local
        with _reserved(near, (key,)) as token:
            return self._get_or_fill(client, key, load, near, token)

    def _get_or_fill(self, client, key: Key, load, near: LocalCache | None, token: int | None) -> bytes | None:
        try:
            miss = self._look_up(client, key)
        except Exception as error:  # any Redis failure: answer from the database
            if not _is_redis_error(error):
                raise
            self.note_failure(error)
            return load()
        if isinstance(miss, bytes):
            if near is not None:
                near.keep(token, {key.value: miss})
            return miss  # a hit, or another reader's fill
        with routing.reads_at_least(miss.floor):  # a writer reads its write; a fill never reads stale
            if not miss.trusted:
                return load()  # an untrusted cache is never filled
            payload = None
            try:
                payload = load()
            finally:
                if payload is not None:
                    if self._fill(key, miss.stamp, payload, miss.lock_token, miss.epoch) and near is not None:
                        near.keep(token, {key.value: payload})
                elif miss.lock_token:
                    self._release(client, key, miss.lock_token)
        return payload

    def _look_up(self, client, key: Key) -> "bytes | _Miss":
        """One round trip: the value, or what a fill needs (stamp, epoch, floor, the fill lock if taken)."""
        token = _lock_token()
        reply = self._scripts["lookup"](
            keys=[key.value, key.stamp, key.lock, heartbeat_key()],
            args=[LOCK_TTL_MS, token, _max_staleness_ms()],
        )
        if reply[0] is not None:
            _event(key.family, "hit").inc()
            return reply[0]
        stamp, locked, epoch, floor = reply[1] or b"", reply[2], reply[3] or b"", int(reply[4] or 0)
        if locked == UNTRUSTED_REPLY:
            UNTRUSTED.labels(key.family).inc()
            return _Miss(stamp, epoch, max(_stamp_lsn(stamp), floor), lock_token="", trusted=False)
        _event(key.family, "miss").inc()
        if not locked:
            value = self._wait_for_fill(client, key)
            if value is not None:
                return value
            stamp = client.get(key.stamp) or b""  # the filler gave up; fill with a fresh stamp
            token = ""
        return _Miss(stamp, epoch, max(_stamp_lsn(stamp), floor), lock_token=token, trusted=True)

    def get_or_fill_many(
        self, keys: Sequence[Key], load_many: Callable[[list[Key]], dict[Key, bytes]]
    ) -> dict[Key, bytes | None]:
        """The cached payloads of `keys`; the missed ones from `load_many(missed)` (and cached).

        One Redis round trip (a script reading the heartbeat, every value and every stamp) answers all
        hits while the cache is trusted (untrusted: no hits, no fills, reads at or after the stamps), `load_many`
        loads every miss at once (one query), and one more round trip fills them, each
        compare-and-set on the stamp it was read with: the no-stale-fill guarantee of
        `get_or_fill`, key by key. The misses are read from a database that has replayed
        the newest of their stamps. No fill lock: the misses cost one query however many
        readers race, and the stamps alone keep fills correct. `load_many` returns the
        records it found; keys it leaves out are not found (and not cached).
        """
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        client = self.client()
        if client is None or connections[DEFAULT_DB_ALIAS].in_atomic_block:
            found = load_many(keys)  # no Redis, or inside a transaction: the database alone
            return {key: found.get(key) for key in keys}
        near = self.near()
        records: dict[Key, bytes | None] = self._local_hits(near, keys)
        missing = [key for key in keys if key not in records]
        if not missing:
            return records
        with _reserved(near, missing) as token:
            records.update(self._get_or_fill_many(client, missing, load_many, near, token))
        return records

    def _get_or_fill_many(self, client, keys: list[Key], load_many, near: LocalCache | None, token: int | None):
        try:
            reply = self._lookup_many(keys)
        except Exception as error:
            if not _is_redis_error(error):
                raise
            self.note_failure(error)
            found = load_many(keys)  # Redis failed: the database alone
            return {key: found.get(key) for key in keys}
        trusted, epoch, floor = reply[0] == 1, reply[1] or b"", int(reply[2] or 0)
        records, stamps = self._many_replies(keys, reply[3:], trusted=trusted)
        kept = {key.value: record for key, record in records.items() if record is not None}
        if stamps:
            with routing.reads_at_least(max(floor, *(_stamp_lsn(stamp) for stamp in stamps.values()))):
                found = load_many(list(stamps))
            for key in stamps:
                records[key] = found.get(key)
            if trusted:
                fills = {key: (stamps[key], found[key]) for key in stamps if found.get(key) is not None}
                kept.update((key.value, fills[key][1]) for key in self._fill_many(fills, epoch))
        if near is not None:
            near.keep(token, kept)
        return records

    def _lookup_many(self, keys: list[Key]) -> list:
        """One round trip: {trusted, epoch, floor, value1, stamp1, ...} (see lua/lookup_many.lua)."""
        return self._scripts["lookup_many"](
            keys=[heartbeat_key(), *(name for key in keys for name in (key.value, key.stamp))],
            args=[_max_staleness_ms()],
        )

    @staticmethod
    def _local_hit(near: LocalCache | None, key: Key) -> bytes | None:
        record = near.get(key.value) if near is not None else None
        if record is not None:
            _event(key.family, "hit").inc()
        return record

    @staticmethod
    def _local_hits(near: LocalCache | None, keys: Sequence[Key]) -> dict[Key, bytes]:
        if near is None:
            return {}
        local = near.get_many(key.value for key in keys)
        hits = {key: local[key.value] for key in keys if key.value in local}
        _count(hits, "hit")
        return hits

    def _fill_many(self, fills: dict[Key, tuple[bytes, bytes]], epoch: bytes) -> list[Key]:
        """Fill what `fills` holds (key: (stamp, payload)), each on its stamp; the keys filled."""
        if not fills:
            return []
        keys = [heartbeat_key(), *(name for key in fills for name in (key.value, key.stamp))]
        args = [settings.CACHE_TTL, epoch, *(part for stamp, payload in fills.values() for part in (stamp, payload))]
        try:
            filled = self._scripts["fill_many"](keys=keys, args=args)
        except Exception as error:
            if not _is_redis_error(error):
                raise
            self.note_failure(error)
            return []
        for key, done in zip(fills, filled, strict=True):
            _event(key.family, "fill" if done else "fill_refused").inc()
        return [key for key, done in zip(fills, filled, strict=True) if done]

    def peek(self, key: Key, *, local: bool = True) -> bytes | None:
        """The cached record for `key` while the cache is trusted; never fills, never waits (for the hit path).

        `local=False` (a request with a consistency token) asks Redis, not this process's layer.
        """
        if self.client() is None:
            return None
        near = self.near(allowed=local)
        record = self._local_hit(near, key)
        if record is not None:
            return record
        return self._peek_in_redis(near, [key]).get(key)

    def peek_many(self, keys: Sequence[Key], *, local: bool = True) -> dict[Key, bytes]:
        """The cached records of `keys` while the cache is trusted (those found); never fills, never waits."""
        if self.client() is None:
            return {}
        near = self.near(allowed=local)
        records = self._local_hits(near, keys)
        missing = [key for key in keys if key not in records]
        if not missing:
            return records
        return {**records, **self._peek_in_redis(near, missing)}

    def _peek_in_redis(self, near: LocalCache | None, missing: list[Key]) -> dict[Key, bytes]:
        """One round trip for keys the local layer did not hold; what Redis answered is kept there too."""
        with _reserved(near, missing) as token:
            try:
                reply = self._lookup_many(missing)
            except Exception as error:
                if not _is_redis_error(error):
                    raise
                self.note_failure(error)
                return {}
            if reply[0] != 1:
                return {}  # untrusted: Django answers from the database (and counts it)
            found = {key: value for key, value in zip(missing, reply[3::2], strict=True) if value is not None}
            _count(found, "hit")
            if near is not None:
                near.keep(token, {key.value: value for key, value in found.items()})
        return found

    @staticmethod
    def _many_replies(keys: list[Key], replies: list, *, trusted: bool) -> tuple[dict, dict]:
        """The values `lookup_many` found, and the stamps of the keys it missed."""
        records: dict[Key, bytes | None] = {}
        stamps: dict[Key, bytes] = {}
        for index, key in enumerate(keys):
            value, stamp = replies[2 * index], replies[2 * index + 1]
            records[key] = value
            if value is None:
                stamps[key] = stamp or b""
            if trusted:
                _event(key.family, "hit" if value is not None else "miss").inc()
            else:
                UNTRUSTED.labels(key.family).inc()
        return records, stamps

    def _wait_for_fill(self, client, key: Key) -> bytes | None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = 0.002
        while time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            # The lock first, then the value, in one round trip: a fill sets its value and drops its lock in one
            # step, so a lock found gone with no value means the filler gave up (read the other way round, a fill
            # landing between the two reads looked like giving up, and the waiter queried too).
            pipe = client.pipeline(transaction=False)
            pipe.exists(key.lock)
            pipe.get(key.value)
            locked, value = pipe.execute()
            if value is not None:
                _event(key.family, "hit_after_wait").inc()
                return value
            if not locked:
                return None  # the filler gave up
        _event(key.family, "wait_timeout").inc()  # the filler is slower than LOCK_WAIT_SECONDS
        return None

    def _fill(self, key: Key, stamp: bytes, payload: bytes, token: str, epoch: bytes) -> bool:
        try:
            filled = self._scripts["fill"](
                keys=[key.value, key.stamp, key.lock, heartbeat_key()],
                args=[stamp, payload, settings.CACHE_TTL, token, epoch],
            )
        except Exception as error:
            if not _is_redis_error(error):
                raise
            self.note_failure(error)
            return False
        _event(key.family, "fill" if filled else "fill_refused").inc()
        return bool(filled)

    def _release(self, client, key: Key, token: str) -> None:
        try:
            if client.get(key.lock) == token.encode():
                client.delete(key.lock)
        except Exception as error:
            if not _is_redis_error(error):
                raise

    def add_to_counter(self, name: str, amount: int, *, ttl: int) -> int | None:
        """Add to a shared counter (INCRBY) and return its total; None while Redis is down."""
        client = self.client()
        if client is None:
            return None
        try:
            pipe = client.pipeline(transaction=False)
            pipe.incrby(name, amount)
            pipe.expire(name, ttl)
            return pipe.execute()[0]
        except Exception as error:
            if not _is_redis_error(error):
                raise
            self.note_failure(error)
            return None

    # -- invalidation ----------------------------------------------------------------
    def invalidate(self, keys: Iterable[Key]) -> None:
        """Invalidate `keys` once the current transaction commits (at once outside one)."""
        keys = list(dict.fromkeys(keys))
        if keys and self.enabled:
            transaction.on_commit(lambda: self._invalidate_now(keys), robust=True)

    def _invalidate_now(self, keys: list[Key]) -> None:
        if self._near is not None:
            self._near.forget(key.value for key in keys)  # this process reads its own write at once
        lsn = routing.primary_lsn() or 0
        client = self.client()
        if client is None:
            self._queue(keys)
            return
        try:
            self._send_invalidations(keys, lsn)
        except Exception as error:
            if not _is_redis_error(error):
                raise
            self.note_failure(error)
            self._queue(keys)

    def _send_invalidations(self, keys: list[Key], lsn: int) -> None:
        flat = [name for key in keys for name in (key.value, key.stamp)]
        self._scripts["invalidate"](keys=flat, args=[lsn, uuid.uuid4().hex, STAMP_TTL, changes_channel()])
        if settings.CACHE_LOCAL_MAX_BYTES > 0:
            # Redis runs this only after it has written the invalidation to every process's subscription
            # (questdb/cache/local.py): the write's response cannot overtake it.
            self._client.ping()
        for key in keys:
            _event(key.family, "invalidation").inc()

    def _queue(self, keys: list[Key]) -> None:
        with self._pending_lock:
            if len(self._pending) + len(keys) > MAX_PENDING_INVALIDATIONS:
                self._pending, self._pending_overflowed = [], True
            else:
                self._pending.extend(keys)

    def _replay_pending(self) -> bool:
        """Send invalidations Redis missed while it was down; False if it is still down."""
        with self._pending_lock:
            pending, overflowed = self._pending, self._pending_overflowed
            self._pending, self._pending_overflowed = [], False
        try:
            if overflowed:
                # Too much was missed to replay key by key: drop every cached value.
                for name in self._client.scan_iter(f"{settings.CACHE_KEY_PREFIX}:v*", count=1000):
                    self._client.delete(name)
                self._client.publish(changes_channel(), FLUSH)  # and every process's local layer
            if pending:
                self._send_invalidations(pending, routing.primary_lsn() or 0)
            logger.info("redis is back; replayed %d missed invalidations", len(pending))
            return True
        except Exception as error:
            if not _is_redis_error(error):
                raise
            self._queue(pending)
            self._pending_overflowed = self._pending_overflowed or overflowed
            self.note_failure(error)
            return False


@contextlib.contextmanager
def _reserved(near: LocalCache | None, keys: Sequence[Key]):
    """Reserve `keys` in the local layer while Redis is asked for them: the token `keep` needs (None: no layer)."""
    names = [key.value for key in keys]
    token = near.reserve(names) if near is not None else None
    try:
        yield token
    finally:
        if token is not None:
            near.release(token, names)


@functools.cache
def _event(family: str, event: str):
    """EVENTS' child for a family and event, looked up once (`labels` locks and validates on every call)."""
    return EVENTS.labels(family, event)


def _count(keys: Iterable[Key], event: str) -> None:
    """EVENTS for many keys: one update per family (a batch's 50 hits are one increment)."""
    families = collections.Counter(key.family for key in keys)
    for family, count in families.items():
        _event(family, event).inc(count)


def _local_layer(client) -> LocalCache:
    """A local layer whose subscription connects as the client's pool does (same server, options, Sentinel)."""
    pool = client.connection_pool
    return LocalCache(
        max_bytes=settings.CACHE_LOCAL_MAX_BYTES,
        channel=changes_channel(),
        connect=lambda: pool.connection_class(**pool.connection_kwargs),
        max_staleness=lambda: settings.CACHE_MAX_STALENESS,
    )


def _is_redis_error(error: Exception) -> bool:
    from redis.exceptions import RedisError

    return isinstance(error, (RedisError, OSError))


lookup_cache = LookupCache()
