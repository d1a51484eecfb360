"""Direct connections to the primary and the standby, for tests that watch replication itself."""

import time

import psycopg
from django.db import connections

STANDBY_PORT = 5433


def connect(alias: str = "default", *, port: int | None = None) -> psycopg.Connection:
    config = connections[alias].settings_dict
    return psycopg.connect(
        host=config["HOST"],
        port=port or config["PORT"],
        dbname=config["NAME"],
        user=config["USER"],
        autocommit=True,
    )


def primary_lsn() -> int:
    with connect() as conn:
        return conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]


def standby_replay_lsn() -> int:
    with connect("replica_1") as conn:
        return conn.execute("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn").fetchone()[0]


def wait_for_replay(timeout: float = 15.0) -> None:
    target = primary_lsn()
    deadline = time.monotonic() + timeout
    while standby_replay_lsn() < target:
        if time.monotonic() > deadline:
            raise AssertionError("the standby did not replay the primary's WAL in time")
        time.sleep(0.02)


def flush_statistics() -> None:
    """Close pooled connections: a server backend reports its statistics when it ends, not while idle."""
    for connection in connections.all():
        connection.close()
        connection.close_pool()


def index_scans(alias: str, table: str) -> int:
    """Index scans on `table` as counted by the server behind `alias` (its own statistics)."""
    with connect(alias) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT coalesce(idx_scan, 0) + coalesce(seq_scan, 0) FROM pg_stat_user_tables WHERE relname = %s",
            [table],
        ).fetchone()
        return int(row[0]) if row else 0


def wait_until(predicate, *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
