"""Hot standby of the local primary (scripts/standby.sh) for questdb.

Starts a real streaming standby on 127.0.0.1:${STANDBY_PORT:-5433}. The
standby is left running afterwards: other tests read from it.
"""

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.ops.support import require

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
STANDBY = REPO_ROOT / "scripts" / "standby.sh"
PRIMARY_HOST = os.environ.get("PRIMARY_HOST", "127.0.0.1")
PRIMARY_PORT = os.environ.get("PRIMARY_PORT", "5432")
STANDBY_PORT = os.environ.get("STANDBY_PORT", "5433")


def psql(port, sql, host="127.0.0.1"):
    return subprocess.run(
        [
            "psql",
            "-X",
            "-h",
            host,
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def standby(*args):
    return subprocess.run(
        ["bash", str(STANDBY), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module", autouse=True)
def running_standby():
    require(shutil.which("psql") is not None, "psql is not installed")
    require(
        os.geteuid() == 0 or os.environ.get("USER") == "postgres",
        "the standby script needs root or the postgres OS user",
    )
    require(
        psql(PRIMARY_PORT, "SELECT 1", host=PRIMARY_HOST).returncode == 0,
        f"primary PostgreSQL on {PRIMARY_HOST}:{PRIMARY_PORT} is not reachable",
    )
    proc = standby("start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Deliberately no teardown/stop: the standby stays up for other tests.


def test_start_is_idempotent():
    proc = standby("start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "already running" in proc.stdout


def test_status_reports_streaming():
    proc = standby("status")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "in recovery" in proc.stdout
    assert "streaming" in proc.stdout
    assert psql(STANDBY_PORT, "SELECT pg_is_in_recovery()").stdout.strip() == "t"
    receiver = psql(STANDBY_PORT, "SELECT status FROM pg_stat_wal_receiver")
    assert receiver.stdout.strip() == "streaming"


def test_primary_changes_are_replayed_on_standby():
    table = f"questdb_standby_probe_{uuid.uuid4().hex[:12]}"
    created = psql(
        PRIMARY_PORT,
        f"CREATE TABLE {table} (id int PRIMARY KEY, note text); INSERT INTO {table} VALUES (1, 'replicated');",
        host=PRIMARY_HOST,
    )
    assert created.returncode == 0, created.stderr
    try:
        waited = standby("wait-replay")
        assert waited.returncode == 0, waited.stdout + waited.stderr
        seen = psql(STANDBY_PORT, f"SELECT note FROM {table} WHERE id = 1")
        assert seen.returncode == 0, seen.stderr
        assert seen.stdout.strip() == "replicated"
    finally:
        psql(PRIMARY_PORT, f"DROP TABLE IF EXISTS {table}", host=PRIMARY_HOST)


def test_standby_is_read_only():
    proc = psql(STANDBY_PORT, "CREATE TABLE questdb_standby_write_probe (id int)")
    assert proc.returncode != 0
    assert "read-only transaction" in proc.stderr


def test_standby_exposes_database_statistics():
    proc = psql(
        STANDBY_PORT,
        "SELECT current_setting('track_counts'), current_setting('max_connections'),"
        " count(*) FROM pg_stat_database WHERE datname = 'postgres'",
    )
    assert proc.returncode == 0, proc.stderr
    track_counts, max_connections, rows = proc.stdout.strip().split("|")
    assert track_counts == "on"
    assert int(max_connections) >= 200
    assert rows == "1"
