"""Scaling reads out: two local hot standbys in DB_READ_HOST share the reads."""

import os
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from characters.models import Character
from tests.db.helpers import wait_until
from tests.e2e.conftest import gunicorn

ROOT = Path(__file__).resolve().parents[2]
SECOND_PORT = 5434
pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.slow]


def _second_standby(command: str) -> None:
    env = {
        **os.environ,
        "STANDBY_PORT": str(SECOND_PORT),
        "STANDBY_DATA_DIR": "/var/lib/postgresql/questdb-standby-2",
    }
    subprocess.run(
        [str(ROOT / "scripts" / "standby.sh"), command], env=env, check=True, capture_output=True, timeout=180
    )


def _scans(port: int, dbname: str) -> int:
    # A fresh connection each time, and backends that end report their counts.
    with psycopg.connect(host="127.0.0.1", port=port, dbname=dbname, user="postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'characters'"
        ).fetchone()
        return int(row[0]) if row else 0


def test_reads_are_spread_over_both_standbys(http_session, make_user):
    from django.db import connections

    dbname = connections["default"].settings_dict["NAME"]
    character = Character.objects.create(user=make_user(), name="Twin")
    _second_standby("start")
    try:
        _second_standby("wait-replay")
        subprocess.run([str(ROOT / "scripts" / "standby.sh"), "wait-replay"], check=True, capture_output=True)
        before = {port: _scans(port, dbname) for port in (5433, SECOND_PORT)}
        env = {"DB_READ_HOST": f"127.0.0.1:5433,127.0.0.1:{SECOND_PORT}", "REDIS_URL": "", "DB_MIN_CONNECTIONS": "1"}
        with gunicorn(**env) as base:

            def both_take_reads() -> bool:
                report = http_session.get(f"{base}/readyz", timeout=5).json()["databases"]
                return all(report[alias]["taking_reads"] for alias in ("replica_1", "replica_2"))

            assert wait_until(both_take_reads, timeout=10)
            for _ in range(60):
                assert http_session.get(f"{base}/api/v1/characters/{character.id}/", timeout=5).status_code == 200
        time.sleep(1.5)  # the server processes have exited; let the standbys file their statistics
        after = {port: _scans(port, dbname) for port in (5433, SECOND_PORT)}
    finally:
        _second_standby("stop")
    served = {port: after[port] - before[port] for port in after}
    assert sum(served.values()) >= 60
    assert min(served.values()) >= 10, served
