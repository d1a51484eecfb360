"""The container start: docker/entrypoint.sh, `manage.py migrate_locked` and `manage.py wait_for_db`.

Each test runs the real commands in subprocesses against a scratch database (a fresh
PostgreSQL database created with psql and dropped afterwards, or a SQLite file), with
a fake `gunicorn` on PATH that records how it was exec'd instead of serving.
"""

import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from questdb.management.commands.migrate_locked import MIGRATION_LOCK_ID
from tests.ops.support import psql, server_url

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO_ROOT / "docker" / "entrypoint.sh"
BIN = Path(sys.executable).parent

FAKE_GUNICORN = """#!/bin/sh
# Records how the entry point started it, instead of serving.
printf '%s\\n' "$$" > "$FAKE_GUNICORN_RECORD.pid"
pwd > "$FAKE_GUNICORN_RECORD.cwd"
for argument in "$@"; do printf '%s\\n' "$argument"; done > "$FAKE_GUNICORN_RECORD"
"""


@pytest.fixture
def scratch_database():
    name = f"questdb_lock_{uuid.uuid4().hex[:12]}"
    psql(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _env(database_url: str, **extra) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DB_READ_HOST", "DATABASE_REPLICA_URLS", "DATABASE_URL", "MIGRATE_ON_START", "WAIT_FOR_DB"}
    }
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        DATABASE_URL=database_url,
        QUESTDB_ENV="development",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def _manage(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# --- migrate_locked ---------------------------------------------------------------------


def test_two_concurrent_migrate_locked_apply_migrations_exactly_once(scratch_database):
    env = _env(f"{server_url()}/{scratch_database}")
    # Hold the lock ourselves until both processes are queued on it, so that they really
    # race for it (each would otherwise find a finished database or an empty one by chance).
    with psycopg.connect(f"{server_url()}/{scratch_database}", autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
        first = _manage("migrate_locked", env=env)
        second = _manage("migrate_locked", env=env)
        deadline = time.monotonic() + 60
        waiting = 0
        while time.monotonic() < deadline and waiting < 2:
            waiting = holder.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND objid = %s AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                [MIGRATION_LOCK_ID & 0xFFFFFFFF],
            ).fetchone()[0]
            time.sleep(0.1)
        assert waiting == 2, "both processes should be waiting for the migration lock"
        holder.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
        outputs = [process.communicate(timeout=300)[0] for process in (first, second)]

    assert [first.returncode, second.returncode] == [0, 0], "\n".join(outputs)
    for output in outputs:
        assert "waiting" in output
        assert "Released the migration lock." in output
    applied = [output for output in outputs if "Applying " in output]
    idle = [output for output in outputs if "No migrations to apply." in output]
    assert len(applied) == 1, "exactly one process applies the migrations"
    assert len(idle) == 1, "the other finds nothing left to do"

    rows = psql("SELECT count(*), count(DISTINCT (app, name)) FROM django_migrations", scratch_database)
    total, distinct = map(int, rows.split("|"))
    assert total == distinct, "a migration was recorded twice"
    assert total == applied[0].count("Applying ")
    assert total >= 10
    # pg_locks spans the whole server: count only this database's advisory locks.
    held = "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
    held += " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
    assert psql(held, scratch_database) == "0"


def test_migrate_locked_on_sqlite_just_migrates(tmp_path):
    database = tmp_path / "questdb.sqlite3"
    process = _manage("migrate_locked", env=_env(f"sqlite:///{database}"))
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 0, output
    assert "no advisory locks" in output
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM django_migrations").fetchone()[0] >= 10


# --- wait_for_db ------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_wait_for_db_gives_up_with_a_clear_message():
    env = _env(f"postgres://postgres@127.0.0.1:{_closed_port()}/questdb")
    started = time.monotonic()
    process = _manage("wait_for_db", "--timeout", "2", "--interval", "0.5", env=env)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 1
    assert time.monotonic() - started < 30
    assert "did not accept connections within 2s" in output
    assert "Connection refused" in output
    assert "Traceback" not in output


def test_wait_for_db_returns_once_the_database_answers(scratch_database):
    process = _manage("wait_for_db", "--timeout", "10", env=_env(f"{server_url()}/{scratch_database}"))
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    assert "is up" in output


# --- docker/entrypoint.sh -----------------------------------------------------------------


@pytest.fixture
def fake_gunicorn(tmp_path) -> Path:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "gunicorn"
    script.write_text(FAKE_GUNICORN)
    script.chmod(0o755)
    return tmp_path / "gunicorn-argv"


def _entrypoint(record: Path, database_url: str, *args: str, **extra) -> tuple[subprocess.Popen, str]:
    env = _env(database_url, FAKE_GUNICORN_RECORD=str(record), **extra)
    env["PATH"] = f"{record.parent / 'fakebin'}{os.pathsep}{env['PATH']}"
    # Started from elsewhere: the entry point must move to the app directory itself.
    process = subprocess.Popen(
        [str(ENTRYPOINT), *args],
        cwd=record.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, process.communicate(timeout=300)[0]


def _assert_execs_gunicorn(process: subprocess.Popen, record: Path) -> None:
    assert record.read_text().splitlines() == ["-c", "gunicorn.conf.py", "questdb.config.wsgi"]
    # exec, not a child: gunicorn runs in the entry point's own process (PID 1 in a container).
    assert int(Path(f"{record}.pid").read_text()) == process.pid
    assert Path(f"{record}.cwd").read_text().strip() == str(REPO_ROOT)


def test_entrypoint_migrates_then_execs_gunicorn(fake_gunicorn, tmp_path):
    database = tmp_path / "questdb.sqlite3"
    process, output = _entrypoint(fake_gunicorn, f"sqlite:///{database}")
    assert process.returncode == 0, output
    _assert_execs_gunicorn(process, fake_gunicorn)
    assert "is up" in output  # waited for the database first
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM django_migrations").fetchone()[0] >= 10


def test_entrypoint_migrates_postgresql_under_the_advisory_lock(fake_gunicorn, scratch_database):
    process, output = _entrypoint(fake_gunicorn, f"{server_url()}/{scratch_database}")
    assert process.returncode == 0, output
    _assert_execs_gunicorn(process, fake_gunicorn)
    assert "Took the migration lock" in output
    assert "Released the migration lock." in output
    assert int(psql("SELECT count(*) FROM django_migrations", scratch_database)) >= 10


@pytest.mark.parametrize("value", ["0", "false"])
def test_entrypoint_skips_migrations_when_migrate_on_start_is_off(fake_gunicorn, tmp_path, value):
    database = tmp_path / "questdb.sqlite3"
    process, output = _entrypoint(fake_gunicorn, f"sqlite:///{database}", MIGRATE_ON_START=value)
    assert process.returncode == 0, output
    _assert_execs_gunicorn(process, fake_gunicorn)
    assert f"MIGRATE_ON_START={value}: skipping migrations" in output
    assert "Applying" not in output
    with sqlite3.connect(database) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == []


def test_entrypoint_does_not_start_gunicorn_without_a_database(fake_gunicorn):
    process, output = _entrypoint(
        fake_gunicorn, f"postgres://postgres@127.0.0.1:{_closed_port()}/questdb", DB_WAIT_TIMEOUT="2"
    )
    assert process.returncode != 0
    assert not fake_gunicorn.exists()
    assert "did not accept connections within 2s" in output
    assert "Traceback" not in output


def test_entrypoint_runs_a_given_command_instead(fake_gunicorn, tmp_path):
    database = tmp_path / "questdb.sqlite3"
    process, output = _entrypoint(fake_gunicorn, f"sqlite:///{database}", "python", "-c", "print('one-off job')")
    assert process.returncode == 0, output
    assert output.strip() == "one-off job"
    assert not fake_gunicorn.exists()
    assert not database.exists()


def test_entrypoint_waits_for_the_primary_then_execs_the_invalidation_consumer(fake_gunicorn, tmp_path):
    database = tmp_path / "questdb.sqlite3"
    process, output = _entrypoint(fake_gunicorn, f"sqlite:///{database}", "invalidate-cache", REDIS_URL="")
    assert "is up" in output  # waited for the database first
    assert "starting the cache invalidation consumer" in output
    # The consumer itself refuses this configuration, plainly: it ran, not gunicorn, and no migration.
    assert process.returncode == 1
    assert "REDIS_URL is unset" in output
    assert not fake_gunicorn.exists()
