"""The outbox is UNLOGGED: when PostgreSQL loses it, the consumer must notice and drop every cached value.

A PostgreSQL cluster of this test's own (initdb in a temporary directory, questdb's schema copied with
pg_dump) is really crashed: stopped in immediate mode, or one backend killed, which makes the postmaster
reinitialize without restarting (pg_postmaster_start_time() does not change). Crash recovery empties
unlogged tables, so a committed change that the consumer had not yet read is gone from the outbox; the
consumer must then start a new cache epoch (every cached value dropped). A clean restart keeps the
outbox and must not cost a reset.
"""

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from django.db import connections

from accounts.keys import user_id_key
from questdb.cache import invalidation
from tests.e2e.conftest import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.without_consumer, pytest.mark.slow]

ALIAS = "owned_postgres"


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return found[-1].parent


class OwnedPostgres:
    """A throwaway cluster: start, stop (fast or immediate), crash one backend."""

    def __init__(self, root: Path, port: int) -> None:
        self.bindir, self.data, self.port = _bindir(), root / "data", port
        self.log = root / "server.log"

    def _as_owner(self, *command) -> list[str]:
        if os.geteuid() == 0:  # initdb refuses to run as root
            return ["runuser", "-u", "postgres", "--", *command]
        return list(command)

    def run(self, *command) -> None:
        subprocess.run(self._as_owner(*command), check=True, stdout=subprocess.DEVNULL, timeout=180)

    def initdb(self) -> None:
        self.run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n")
            conf.write("autovacuum = off\n")  # what vacuums the outbox here is the consumer

    def start(self) -> None:
        self.run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120", "start")

    def stop(self, mode: str) -> None:
        self.run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop")

    def connect(self, dbname: str = "questdb") -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, self.log.read_text()[-2000:]
                time.sleep(0.2)

    def crash_one_backend(self) -> None:
        """SIGKILL one backend: the postmaster kills every other, runs crash recovery, and stays the same process."""
        victim = self.connect()
        pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
        os.kill(pid, signal.SIGKILL)
        victim.close()
        time.sleep(0.5)
        self.wait_ready()


@pytest.fixture
def owned_postgres():
    """questdb's schema (migrated test database, pg_dump --schema-only) in a cluster this test owns."""
    root = Path(tempfile.mkdtemp(prefix="questdb-outbox-loss-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = OwnedPostgres(root, free_port())
    server.initdb()
    server.start()
    try:
        config = connections["default"].settings_dict
        with server.connect("postgres") as conn:
            conn.execute("CREATE DATABASE questdb")
        schema = subprocess.run(
            [str(server.bindir / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges",
             "-h", config["HOST"], "-p", str(config["PORT"]), "-U", config["USER"], config["NAME"]],
            check=True, capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip
        subprocess.run(  # psql, not one statement: pg_dump writes psql meta-commands too
            [str(server.bindir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(server.port),
             "-U", "postgres", "-d", "questdb"],
            input=schema, check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        connections.settings[ALIAS] = {**config, "HOST": "127.0.0.1", "PORT": server.port, "NAME": "questdb"}
        yield server
    finally:
        connections.settings.pop(ALIAS, None)
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def redis_client(private_redis, settings) -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


class RunningConsumer:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.consumer = invalidation.Consumer(redis_client=client, database=ALIAS, log=lambda _line: None)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.consumer.run, args=(self.stop,), daemon=True)

    def __enter__(self):
        seconds, micros = self.client.time()
        started_ms = seconds * 1000 + micros // 1000
        self.thread.start()
        deadline = time.monotonic() + 30
        # Until this consumer's heartbeat covers every change committed before it started (an older one may
        # still look fresh).
        while int(self.client.hget(invalidation.heartbeat_key(), "seen_ms") or 0) <= started_ms:
            assert time.monotonic() < deadline, "the consumer did not catch up"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def _epoch(client: redis.Redis) -> bytes:
    return client.hget(invalidation.heartbeat_key(), "epoch")


def _outbox(server: OwnedPostgres) -> int:
    with server.connect() as conn:
        return conn.execute("SELECT count(*) FROM cache_changes").fetchone()[0]


def _user(server: OwnedPostgres) -> uuid.UUID:
    user_id = uuid.uuid4()
    with server.connect() as conn:
        conn.execute(
            "INSERT INTO users (id, username, email, name, email_verified, role, banned, created_at, updated_at) "
            "VALUES (%s, %s, %s, '', false, 'user', false, now(), now())",
            [user_id, f"u{user_id.hex[:8]}", f"{user_id.hex[:8]}@example.com"],
        )
    return user_id


@pytest.mark.parametrize("crash", ["immediate stop", "one backend killed"])
def test_a_crash_that_empties_the_outbox_drops_every_cached_value(owned_postgres, redis_client, crash):
    user_id = _user(owned_postgres)
    stale, bystander = user_id_key(user_id).value, user_id_key(uuid.uuid4()).value
    with RunningConsumer(redis_client):
        epoch = _epoch(redis_client)
        redis_client.set(stale, b"the row before the change")
        redis_client.set(bystander, b"an unrelated cached value")
    # Committed while the consumer is stopped: the change waits in the outbox.
    with owned_postgres.connect() as conn:
        conn.execute("UPDATE users SET name = 'changed' WHERE id = %s", [user_id])
    assert _outbox(owned_postgres) == 1

    if crash == "immediate stop":
        owned_postgres.stop("immediate")
        owned_postgres.start()
    else:
        with owned_postgres.connect() as conn:
            started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
        owned_postgres.crash_one_backend()
        with owned_postgres.connect() as conn:  # the server start time cannot tell this crash
            assert conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] == started
    owned_postgres.wait_ready()
    with owned_postgres.connect() as conn:
        assert conn.execute("SELECT name FROM users WHERE id = %s", [user_id]).fetchone()[0] == "changed"
    assert _outbox(owned_postgres) == 0  # crash recovery emptied the unlogged outbox: the change is gone from it

    with RunningConsumer(redis_client):
        assert _epoch(redis_client) != epoch
        assert redis_client.exists(stale, bystander) == 0  # nothing cached before the loss survives it


def test_a_clean_restart_keeps_the_outbox_and_the_epoch(owned_postgres, redis_client):
    user_id = _user(owned_postgres)
    changed, bystander = user_id_key(user_id).value, user_id_key(uuid.uuid4()).value
    with RunningConsumer(redis_client):
        epoch = _epoch(redis_client)
        redis_client.set(changed, b"the row before the change")
        redis_client.set(bystander, b"an unrelated cached value")
    with owned_postgres.connect() as conn:
        conn.execute("UPDATE users SET name = 'changed' WHERE id = %s", [user_id])
    owned_postgres.stop("fast")
    owned_postgres.start()
    owned_postgres.wait_ready()
    assert _outbox(owned_postgres) == 1

    with RunningConsumer(redis_client):
        deadline = time.monotonic() + 10
        while redis_client.exists(changed):  # invalidated from the outbox, which survived
            assert time.monotonic() < deadline, "the change kept in the outbox was not invalidated"
            time.sleep(0.01)
        assert _epoch(redis_client) == epoch
        assert redis_client.exists(bystander) == 1


def test_the_consumer_vacuums_the_outbox_where_autovacuum_does_not(owned_postgres, redis_client, monkeypatch):
    monkeypatch.setattr(invalidation, "VACUUM_EVERY", 20)
    user_id = _user(owned_postgres)

    def vacuums() -> int:
        with owned_postgres.connect() as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            return conn.execute(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'cache_changes'"
            ).fetchone()[0]

    with RunningConsumer(redis_client), owned_postgres.connect() as conn:
        assert vacuums() == 0
        for index in range(60):
            conn.execute("UPDATE users SET name = %s WHERE id = %s", [f"n{index}", user_id])
        deadline = time.monotonic() + 15
        while vacuums() == 0:
            assert time.monotonic() < deadline, "the consumer never vacuumed the outbox"
            time.sleep(0.1)
