"""Per-key request throttling (API_THROTTLE_RATE), shared by every process through Redis.

Counting each request in Redis would cost a round trip per request, as much as the
lookup it guards. So each process counts locally and adds its count to the shared
window in Redis (one INCRBY) every SYNC_INTERVAL seconds, or sooner once its unsent
count reaches SYNC_FRACTION of the headroom it last saw. Far from the limit that is
rare; near it every request syncs, so the limit holds to within a few requests.
DRF's throttles are a fairness measure, not a security boundary; neither is this one,
and a Redis outage lets requests through rather than failing them.
"""

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from rest_framework import throttling

from questdb.api.auth import Caller
from questdb.cache.store import lookup_cache

SYNC_INTERVAL = 0.1
SYNC_FRACTION = 0.05


@dataclass
class _Window:
    number: int
    shared: int = 0  # the window's total in Redis when this process last synced
    pending: int = 0  # this process's requests not yet added to it
    synced_at: float = 0.0


class WindowCounter:
    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def allow(self, name: str, *, limit: int, period: int) -> bool:
        now = time.time()
        number = int(now // period)
        with self._lock:
            window = self._windows.get(name)
            if window is None or window.number != number:
                window = self._windows[name] = _Window(number)
                self._forget_old(number)
            window.pending += 1
            estimate = window.shared + window.pending
            headroom = max(0, limit - window.shared)
            must_sync = window.pending >= headroom * SYNC_FRACTION or now - window.synced_at >= SYNC_INTERVAL
            if not must_sync:
                return estimate <= limit
            pending, window.pending, window.synced_at = window.pending, 0, now
        shared = self._add(f"{name}:{number}", pending, period)
        with self._lock:
            if shared is None:  # Redis unreachable: keep the count locally and let the request through
                window.pending += pending
                return True
            window.shared = max(window.shared, shared)
            return window.shared + window.pending <= limit

    def _forget_old(self, number: int) -> None:
        if len(self._windows) > 10_000:  # keys of past windows
            self._windows = {k: w for k, w in self._windows.items() if w.number == number}

    @staticmethod
    def _add(key: str, amount: int, period: int) -> int | None:
        name = f"{settings.CACHE_KEY_PREFIX}:throttle:{key}"
        if not lookup_cache.enabled:
            from django.core.cache import cache  # no Redis: this process's local cache

            cache.add(name, 0, timeout=period * 2)
            try:
                return cache.incr(name, amount)
            except ValueError:
                return None
        return lookup_cache.add_to_counter(name, amount, ttl=period * 2)


counter = WindowCounter()


def within_rate(caller: Caller) -> bool:
    """Count one request for the caller's key; False once API_THROTTLE_RATE is exceeded."""
    if not settings.API_THROTTLE_RATE:
        return True
    limit, period = throttling.SimpleRateThrottle.parse_rate(None, settings.API_THROTTLE_RATE)
    return counter.allow(caller.key_id, limit=limit, period=period)


class PerKeyThrottle(throttling.BaseThrottle):
    """API_THROTTLE_RATE per API key, e.g. "100000/min"; empty turns throttling off."""

    def allow_request(self, request, view) -> bool:
        caller = request.auth
        if not isinstance(caller, Caller) or not settings.API_THROTTLE_RATE:
            return True
        period = throttling.SimpleRateThrottle.parse_rate(None, settings.API_THROTTLE_RATE)[1]
        self._retry_after = period - (time.time() % period)
        return within_rate(caller)

    def wait(self) -> float:
        return self._retry_after
