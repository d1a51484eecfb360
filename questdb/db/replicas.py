"""Replica health: a background thread per process that checks each replica's liveness and lag.

Lag is measured as in GitLab's load balancer, by WAL position rather than by
`pg_last_xact_replay_timestamp()` alone (which grows while an idle primary
writes nothing): every check records the primary's WAL position, and a
replica's lag is the age of the newest recorded position it has replayed.
A replica that fails a check, or a request, is skipped until a check passes.
"""

import contextlib
import logging
import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from questdb.db.direct import pg_connect_kwargs
from questdb.observability import refresh_pool_gauges

logger = logging.getLogger(__name__)
HISTORY = 600  # primary WAL positions remembered, one per check


@dataclass
class ReplicaState:
    alias: str
    reachable: bool = False
    replay_lsn: int = 0
    lag_seconds: float | None = None
    error: str = ""
    connection: psycopg.Connection | None = field(default=None, repr=False)

    def takes_reads(self, max_lag: float) -> bool:
        return self.reachable and self.lag_seconds is not None and self.lag_seconds <= max_lag

    def report(self, max_lag: float) -> dict:
        return {
            "reachable": self.reachable,
            "replay_lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "taking_reads": self.takes_reads(max_lag),
            "error": self.error or None,
        }


def _conninfo(alias: str, *, connect_timeout: float) -> dict:
    params = pg_connect_kwargs(connections[alias].settings_dict, application_name="questdb-replica-monitor")
    return {**params, "connect_timeout": max(1, round(connect_timeout)), "autocommit": True}


class ReplicaMonitor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._states: dict[str, ReplicaState] = {}
        self._primary: psycopg.Connection | None = None
        self._history: deque[tuple[float, int]] = deque(maxlen=HISTORY)
        self._wake = threading.Event()

    @property
    def aliases(self) -> list[str]:
        return settings.REPLICA_ALIASES

    # -- used on the request path; never blocks on the network -----------------
    def choose(self, *, min_lsn: int = 0) -> str | None:
        self._ensure_running()
        max_lag = settings.DB_REPLICA_MAX_LAG
        eligible = [
            state.alias for state in self._states.values() if state.takes_reads(max_lag) and state.replay_lsn >= min_lsn
        ]
        return random.choice(eligible) if eligible else None

    def has_replayed(self, alias: str, lsn: int) -> bool:
        state = self._states.get(alias)
        return bool(state and state.reachable and state.replay_lsn >= lsn)

    def mark_down(self, alias: str, *, reason: str) -> None:
        state = self._states.get(alias)
        if state is not None and state.reachable:
            state.reachable = False
            state.error = reason[:200]
            logger.warning("replica %s failed a request and is skipped until it passes a check", alias)
        self._wake.set()

    def report(self) -> dict:
        self._ensure_running()
        max_lag = settings.DB_REPLICA_MAX_LAG
        return {alias: state.report(max_lag) for alias, state in self._states.items()}

    def check_now(self) -> None:
        """Run one check in the calling thread, without waiting for the monitor's next round (tests use it)."""
        self._ensure_running()
        with self._lock:
            self._check_all()

    def stop(self) -> None:
        """Stop checking and close the monitor's connections (the next use starts afresh)."""
        with self._lock:
            self._pid = None
            self._wake.set()
            for state in self._states.values():
                self._close(state.connection)
                state.connection = None
            self._close(self._primary)
            self._primary = None

    # -- the background thread ------------------------------------------------
    def _ensure_running(self) -> None:
        # Threads do not survive fork: start one per process, lazily, after gunicorn forks.
        if self._pid == os.getpid() or not self.aliases:
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._states = {alias: ReplicaState(alias) for alias in self.aliases}
            self._primary = None
            self._history.clear()
            self._check_all()
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="questdb-replica-monitor", daemon=True).start()

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            self._wake.wait(settings.DB_REPLICA_CHECK_INTERVAL)
            self._wake.clear()
            with self._lock:
                if self._pid != pid:
                    return
                try:
                    self._check_all()
                    refresh_pool_gauges()
                except Exception:  # the monitor must outlive any single failure
                    logger.exception("replica check failed")

    def _check_all(self) -> None:
        primary_lsn = self._primary_lsn()
        now = time.monotonic()
        if primary_lsn is not None:
            self._history.append((now, primary_lsn))
        for state in self._states.values():
            self._check(state, now)

    def _primary_lsn(self) -> int | None:
        try:
            if self._primary is None or self._primary.closed:
                self._primary = psycopg.connect(
                    **_conninfo(DEFAULT_DB_ALIAS, connect_timeout=settings.DB_REPLICA_CONNECT_TIMEOUT)
                )
            return self._primary.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]
        except psycopg.Error:
            self._close(self._primary)
            self._primary = None
            return None

    def _check(self, state: ReplicaState, now: float) -> None:
        try:
            if state.connection is None or state.connection.closed:
                state.connection = psycopg.connect(
                    **_conninfo(state.alias, connect_timeout=settings.DB_REPLICA_CONNECT_TIMEOUT)
                )
            in_recovery, replay = state.connection.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn"
            ).fetchone()
        except psycopg.Error as error:
            if state.reachable:
                logger.warning("replica %s is unreachable: %s", state.alias, error.__class__.__name__)
            self._close(state.connection)
            state.connection, state.reachable, state.error = None, False, error.__class__.__name__
            return
        if not in_recovery or replay is None:
            # A promoted or misconfigured "replica" is not a replica; keep it out of rotation.
            state.reachable, state.error = False, "not in recovery"
            return
        if not state.reachable:
            logger.info("replica %s is reachable again", state.alias)
        state.reachable, state.error = True, ""
        state.replay_lsn = int(replay)
        state.lag_seconds = self._lag(int(replay), now)

    def _lag(self, replay_lsn: int, now: float) -> float | None:
        if not self._history:
            return None
        caught_up_at = None
        for seen_at, lsn in reversed(self._history):
            if lsn <= replay_lsn:
                caught_up_at = seen_at
                break
        if caught_up_at is None:  # behind everything remembered
            return now - self._history[0][0]
        return now - caught_up_at

    @staticmethod
    def _close(connection) -> None:
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                connection.close()


monitor = ReplicaMonitor()
