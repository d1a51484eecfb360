"""The lookup cache's layer inside each process: records it served lately, kept until Redis says they changed.

A hit here costs no network round trip. It is exact for the same reasons a Redis hit is:
- Every invalidation (questdb's own writes, the consumer's batches) is one Lua script that deletes the
  values and publishes their names on the cache's channel in the same atomic step; the consumer's
  heartbeat and its resets are published on that channel too. Each process holds one subscribed
  connection, so it reads the messages in the order Redis ran the scripts.
- Before answering, a lookup reads every message already waiting on that connection (one poll() when
  there is none), under the layer's lock: it never serves a record whose invalidation has reached it.
- A record is kept only if no invalidation of its key arrived between asking Redis and keeping it
  (`reserve`, then `keep`: a message for the key cancels the reservation).
- A write through questdb forgets its keys here at once, and after its invalidation sends Redis one
  more command (`confirm`): Redis runs it only after it has written the invalidation to every
  subscriber, so when the write's response leaves questdb every process on one host already has the
  message in its socket, and on other hosts it has left Redis, ahead of any later request.
- A lookup with a consistency token does not use this layer: Redis answers it, strict across hosts.
- Staleness: the heartbeat message carries the consumer's "seen" time and Redis's clock. The layer maps
  Redis's clock onto its own (the smallest offset observed, so delays in delivery count as staleness)
  and trusts itself only while seen + CACHE_MAX_STALENESS lies ahead: the consumer stopped or behind,
  Redis stalled or cut off, and the heartbeats stop, so the records stop being served.
- Anything unexpected (the connection lost, Redis failing, a new epoch, a reset) empties the layer.

The size is bounded by CACHE_LOCAL_MAX_BYTES per process (records' bytes plus a fixed cost per entry);
the least recently used records go first. 0 turns the layer off.
"""

import contextlib
import itertools
import json
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterable

from cachetools import LRUCache
from prometheus_client import Counter

logger = logging.getLogger(__name__)

ENTRY_OVERHEAD = 200  # bytes an entry costs beyond its record (key string, LRU links), for the size bound
# Redis's clock may run faster than ours: let the estimated offset rise this much per second (100 ppm).
CLOCK_DRIFT = 1e-4
# A connection left unread longer than this is replaced rather than drained (its backlog is not worth reading).
IDLE_RECONNECT_SECONDS = 10.0

INVALIDATED, HEARTBEAT, FLUSH = b"K", b"B", b"F"  # message kinds (the first byte)

LOCAL = Counter("questdb_cache_local", "The per-process lookup cache layer, by event.", ["event"])
_HITS = LOCAL.labels("hit")


def channel_name(prefix: str) -> str:
    """The channel every invalidation, heartbeat and reset of the cache with `prefix` is published on."""
    return f"{prefix}:changes"


class LocalCache:
    """One process's layer. `connect` returns a new, unpooled redis-py connection to the cache's Redis."""

    def __init__(self, *, max_bytes: int, channel: str, connect: Callable, max_staleness: Callable[[], float]):
        self.channel = channel
        self._connect = connect
        self._max_staleness_ms = lambda: max_staleness() * 1000
        self._entries = LRUCache(maxsize=max_bytes, getsizeof=lambda record: len(record) + ENTRY_OVERHEAD)
        self._reserved: dict[str, int] = {}
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._conn = None
        self._poller = None
        self._pid = 0
        self._last_read = 0.0
        self._epoch: bytes | None = None
        self._offset_ms: float | None = None  # our monotonic ms minus Redis's ms, smallest seen
        self._offset_at = 0.0
        self._seen_at: float | None = None  # the heartbeat's seen time, on our monotonic clock (ms)

    # -- the request path ---------------------------------------------------------------------
    def get(self, name: str) -> bytes | None:
        """The record kept for `name` while the layer is trusted (None otherwise: ask Redis)."""
        with self._lock:
            record = self._entries.get(name) if self._trusted() else None
        if record is not None:
            _HITS.inc()
        return record

    def get_many(self, names: Iterable[str]) -> dict[str, bytes]:
        """The records kept for `names` while the layer is trusted (none otherwise: ask Redis)."""
        with self._lock:
            if not self._trusted():
                return {}
            found = {name: record for name in names if (record := self._entries.get(name)) is not None}
        if found:
            _HITS.inc(len(found))
        return found

    def _trusted(self) -> bool:
        """Every waiting message applied, and the last heartbeat within the staleness bound (under the lock)."""
        if not self._ready() or self._seen_at is None:
            return False
        return time.monotonic() * 1000 - self._seen_at <= self._max_staleness_ms()

    def reserve(self, names: Iterable[str]) -> int | None:
        """Before asking Redis for `names`: a token for `keep`, or None when nothing can be kept now."""
        with self._lock:
            if not self._ready():
                return None
            token = next(self._tokens)
            for name in names:
                self._reserved[name] = token
            return token

    def keep(self, token: int | None, records: dict[str, bytes]) -> None:
        """Keep what Redis answered, except the names an invalidation reached since `reserve`."""
        if token is None or not records:
            return
        kept = 0
        with self._lock:
            # Read the waiting messages first: one of them may cancel a reservation.
            if not self._ready():
                return
            for name, record in records.items():
                if self._reserved.get(name) != token:
                    continue
                del self._reserved[name]
                try:
                    self._entries[name] = record
                    kept += 1
                except ValueError:  # larger than the whole layer
                    pass
        if kept:
            LOCAL.labels("kept").inc(kept)

    def release(self, token: int | None, names: Iterable[str]) -> None:
        """End the reservations `keep` did not use."""
        if token is not None:
            with self._lock:
                for name in names:
                    if self._reserved.get(name) == token:
                        del self._reserved[name]

    def forget(self, names: Iterable[str]) -> None:
        """This process's own invalidations, before they reach Redis."""
        with self._lock:
            self._drop(names)

    def flush(self, reason: str) -> None:
        """Empty the layer and drop its connection (Redis failed, or was reset): nothing kept can be trusted."""
        with self._lock:
            self._flush(reason)
            self._disconnect()

    @property
    def held_bytes(self) -> int:
        """What the kept records count against CACHE_LOCAL_MAX_BYTES."""
        return self._entries.currsize

    # -- the subscription -----------------------------------------------------------------------
    def _ready(self) -> bool:
        """Connected, with every waiting message applied (called under the lock)."""
        if self._conn is None or self._pid != os.getpid():
            if not self._subscribe():
                return False
        elif time.monotonic() - self._last_read > IDLE_RECONNECT_SECONDS:
            self._flush("idle")
            self._disconnect()
            if not self._subscribe():
                return False
        elif not self._poller.poll(0):
            self._last_read = time.monotonic()
            return True  # nothing arrived, and the last drain left no whole message in the parser
        return self._drain()

    def _drain(self) -> bool:
        try:
            while self._conn.can_read(timeout=0):
                self._apply(self._conn.read_response(disable_decoding=True, push_request=True))
        except Exception as error:  # a lost or garbled connection: start over on the next lookup
            self._flush(f"subscription lost ({error.__class__.__name__})")
            self._disconnect()
            return False
        self._last_read = time.monotonic()
        return True

    def _subscribe(self) -> bool:
        self._flush("new subscription")
        self._conn = None
        try:
            conn = self._connect()
            conn.connect()
            conn.send_command("TIME")
            seconds, micros = conn.read_response()
            # Redis read its clock before this reply arrived: an offset too high by at most the round trip,
            # which heartbeats read late (after an idle spell) cannot raise.
            received_ms = time.monotonic() * 1000
            offset_ms = received_ms - (int(seconds) * 1000 + int(micros) / 1000)
            conn.send_command("SUBSCRIBE", self.channel)
            reply = conn.read_response(disable_decoding=True, push_request=True)
            if not reply or reply[0] != b"subscribe":
                raise ValueError(f"unexpected reply to SUBSCRIBE: {reply!r}")
        except Exception as error:
            logger.warning("local cache layer off: cannot subscribe (%s)", error.__class__.__name__)
            return False
        self._conn, self._pid, self._last_read = conn, os.getpid(), time.monotonic()
        self._offset_ms, self._offset_at = offset_ms, received_ms
        self._poller = select.poll()
        self._poller.register(conn._sock.fileno(), select.POLLIN)
        return True

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken
                self._conn.disconnect()
        self._conn = self._poller = None
        self._epoch, self._offset_ms, self._seen_at = None, None, None

    def _apply(self, message) -> None:
        if message[0] != b"message":
            return  # (un)subscribe confirmations
        payload = message[2]
        kind, body = payload[:1], payload[1:]
        if kind == INVALIDATED:
            self._drop(json.loads(body))
        elif kind == HEARTBEAT:
            self._heartbeat(*body.split())
        elif kind == FLUSH:
            self._flush("reset")
            self._seen_at = None  # trusted again from the next heartbeat
        else:
            raise ValueError(f"unknown cache message {kind!r}")

    def _heartbeat(self, epoch: bytes, seen_ms: bytes, redis_ms: bytes) -> None:
        if epoch != self._epoch:
            if self._epoch is not None:
                self._flush("new epoch")
            self._epoch = epoch
        # Our clock minus Redis's: the smallest seen (a late message only looks older), allowed to creep up.
        now_ms = time.monotonic() * 1000
        allowed = self._offset_ms + (now_ms - self._offset_at) * CLOCK_DRIFT
        self._offset_ms, self._offset_at = min(now_ms - int(redis_ms), allowed), now_ms
        self._seen_at = int(seen_ms) + self._offset_ms

    def _drop(self, names: Iterable[str]) -> None:
        for name in names:
            self._entries.pop(name, None)
            self._reserved.pop(name, None)

    def _flush(self, reason: str) -> None:
        if self._entries or self._reserved:
            LOCAL.labels("flushed").inc()
            logger.debug("local cache layer emptied: %s", reason)
        self._entries.clear()
        self._reserved.clear()
