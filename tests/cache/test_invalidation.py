"""Every committed change reaches the cache: changes made with plain SQL, a consumer killed or stopped,
Redis stopped, paused and flushed, two consumers, and the staleness bound.

Writes here go straight into PostgreSQL over a plain psycopg connection, as the identity app or psql
would; the consumer runs as `manage.py invalidate_cache` in its own process; HTTP goes to a real gunicorn.
"""

import signal
import time
import uuid
from datetime import timedelta

import pytest
import redis
import requests
from django.conf import settings
from django.utils import timezone

from accounts.keys import user_id_key, username_key
from characters.models import Character
from questdb.cache import invalidation
from questdb.db import replicas
from sessions_app.models import Session
from tests.cache.consumer import ConsumerProcess, wait_for_invalidation
from tests.db.helpers import connect, wait_for_replay
from tests.e2e.conftest import gunicorn

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.without_consumer]

TOKEN = "external-token"


def external(sql: str, params=()) -> int:
    """A statement committed by another program: a plain psycopg connection in autocommit."""
    with connect() as conn:
        return conn.execute(sql, params).rowcount


@pytest.fixture
def world(make_user):
    user = make_user(username="Alice", email="alice@example.com")
    first = Character.objects.create(user=user, name="Archer")
    second = Character.objects.create(user=user, name="Bard")
    session = Session.objects.create(user=user, token=TOKEN, expires_at=timezone.now() + timedelta(hours=1))
    return user, first, second, session


@pytest.fixture
def shared_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _lookups(get, post, user, first, second, session, *, username="alice", email="alice@example.com") -> dict:
    return {
        "id": get(f"/api/v1/users/{user.id}/"),
        "username": get(f"/api/v1/users/by-username/{username}/"),
        "email": get(f"/api/v1/users/by-email/{email}/"),
        "first": get(f"/api/v1/characters/{first.id}/"),
        "second": get(f"/api/v1/characters/{second.id}/"),
        "list": get(f"/api/v1/characters/?user={user.id}"),
        "session": get(f"/api/v1/sessions/{session.id}/"),
        "token": post("/api/v1/sessions/lookup/", {"token": TOKEN}),
    }


def _status(answers: dict) -> dict:
    return {name: answer.status_code for name, answer in answers.items()}


@pytest.mark.slow
def test_plain_sql_updates_deletes_cascades_and_expiry_reach_every_lookup(
    world, invalidation_process, write_key, shared_redis
):
    user, first, second, session = world
    with gunicorn() as base:
        http = requests.Session()
        http.headers["Authorization"] = f"Api-Key {write_key}"

        def lookups(**names):
            return _lookups(
                lambda path: http.get(base + path, timeout=5),
                lambda path, body: http.post(base + path, json=body, timeout=5),
                user,
                first,
                second,
                session,
                **names,
            )

        assert set(_status(lookups()).values()) == {200}
        assert shared_redis.exists(user_id_key(user.id).value, username_key("alice").value) == 2  # cached

        external(
            "UPDATE users SET username = 'Alicia', email = 'alicia@example.com', name = 'New Name' WHERE id = %s",
            [user.id],
        )
        external("UPDATE characters SET money = 42 WHERE id = %s", [first.id])
        wait_for_invalidation(shared_redis)
        renamed = lookups(username="alicia", email="alicia@example.com")
        assert set(_status(renamed).values()) == {200}
        assert renamed["id"].json()["username"] == renamed["username"].json()["username"] == "Alicia"
        assert renamed["email"].json()["name"] == "New Name"
        assert renamed["session"].json()["user"]["username"] == renamed["token"].json()["user"]["username"] == "Alicia"
        assert renamed["first"].json()["money"] == 42
        assert {c["name"]: c["money"] for c in renamed["list"].json()["results"]} == {"Archer": 42, "Bard": 0}
        old = lookups()  # the old username and email find nobody any more
        assert (old["username"].status_code, old["email"].status_code) == (404, 404)

        external("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = %s", [session.id])
        external("DELETE FROM characters WHERE id = %s", [second.id])
        wait_for_invalidation(shared_redis)
        changed = lookups(username="alicia", email="alicia@example.com")
        assert (changed["session"].status_code, changed["token"].status_code) == (410, 410)
        assert changed["second"].status_code == 404
        assert [c["name"] for c in changed["list"].json()["results"]] == ["Archer"]

        lookups(username="alicia", email="alicia@example.com")  # cached again where it can be
        assert external("DELETE FROM users WHERE id = %s", [user.id]) == 1  # characters and sessions cascade
        wait_for_invalidation(shared_redis)
        gone = lookups(username="alicia", email="alicia@example.com")
        assert _status(gone) == {
            "id": 404,
            "username": 404,
            "email": 404,
            "first": 404,
            "second": 404,
            "list": 200,
            "session": 404,
            "token": 404,
        }
        assert gone["list"].json()["count"] == 0


@pytest.mark.slow
def test_a_consumer_killed_mid_stream_invalidates_everything_after_its_restart(
    api, make_user, invalidation_process, shared_redis, tmp_path
):
    users = [make_user(username=f"stream{i}", email=f"stream{i}@example.com") for i in range(20)]
    for i, user in enumerate(users):
        assert api.get(f"/api/v1/users/{user.id}/").status_code == 200
        assert api.get(f"/api/v1/users/by-username/stream{i}/").status_code == 200
    with connect() as conn:
        for round_ in range(15):  # a stream of changes; the consumer dies in the middle of it
            for user in users:
                conn.execute("UPDATE users SET name = %s WHERE id = %s", [f"round {round_}", user.id])
            if round_ == 5:
                invalidation_process.kill(signal.SIGKILL)
        for i, user in enumerate(users):  # and more while it is down
            conn.execute("UPDATE users SET name = 'final', username = %s WHERE id = %s", [f"renamed{i}", user.id])

    restarted = ConsumerProcess(redis_url=settings.REDIS_URL, log_path=tmp_path / "restarted.log").start()
    try:
        restarted.wait_for("leading")
        wait_for_invalidation(shared_redis)
        assert invalidation.status(shared_redis)["trusted"]
        for i, user in enumerate(users):
            assert api.get(f"/api/v1/users/{user.id}/").json()["name"] == "final"
            assert api.get(f"/api/v1/users/by-username/stream{i}/").status_code == 404
            assert api.get(f"/api/v1/users/by-username/renamed{i}/").json()["name"] == "final"
        with connect() as conn:
            assert conn.execute("SELECT count(*) FROM cache_changes").fetchone()[0] == 0
    finally:
        restarted.stop()


@pytest.mark.slow
def test_two_consumers_at_once_one_leads_and_the_other_takes_over_when_it_is_killed(
    api, make_user, shared_redis, tmp_path
):
    user = make_user(username="Leader", email="leader@example.com")
    first = ConsumerProcess(redis_url=settings.REDIS_URL, log_path=tmp_path / "first.log").start()
    second = ConsumerProcess(redis_url=settings.REDIS_URL, log_path=tmp_path / "second.log")
    try:
        first.wait_for("leading")
        second.start().wait_for("following")
        path = f"/api/v1/users/{user.id}/"
        assert api.get(path).json()["name"] == ""
        external("UPDATE users SET name = 'one' WHERE id = %s", [user.id])
        wait_for_invalidation(shared_redis)
        assert api.get(path).json()["name"] == "one"
        assert "leading" not in second.output()

        first.kill(signal.SIGKILL)  # the server drops its session, and its advisory lock with it
        external("UPDATE users SET name = 'two' WHERE id = %s", [user.id])
        second.wait_for("leading", timeout=10)
        wait_for_invalidation(shared_redis)
        assert api.get(path).json()["name"] == "two"
        assert invalidation.status(shared_redis)["trusted"]
    finally:
        first.stop()
        second.stop()


@pytest.mark.slow
def test_the_api_answers_a_changed_row_within_the_staleness_bound_when_the_consumer_hangs(
    world, invalidation_process, write_key, shared_redis
):
    user = world[0]
    with gunicorn() as base:
        http = requests.Session()
        http.headers["Authorization"] = f"Api-Key {write_key}"
        path = f"{base}/api/v1/users/{user.id}/"
        assert http.get(path, timeout=5).json()["name"] == ""
        assert http.get(f"{base}/readyz", timeout=5).json()["cache"]["trusted"] is True

        invalidation_process.kill(signal.SIGSTOP)  # hung: it still holds the leadership, its heartbeat stops
        try:
            external("UPDATE users SET name = 'fresh' WHERE id = %s", [user.id])
            changed = time.monotonic()
            while http.get(path, timeout=5).json()["name"] != "fresh":
                assert time.monotonic() - changed < settings.CACHE_MAX_STALENESS + 0.5, "served stale past the bound"
                time.sleep(0.02)
            readiness = http.get(f"{base}/readyz", timeout=5)
            assert readiness.status_code == 200  # reported, not a failure: the database answers
            assert readiness.json()["cache"]["trusted"] is False
            assert 'questdb_cache_untrusted_total{family="user"}' in http.get(f"{base}/metrics", timeout=5).text
        finally:
            invalidation_process.kill(signal.SIGCONT)
        wait_for_invalidation(shared_redis)
        assert http.get(f"{base}/readyz", timeout=5).json()["cache"]["trusted"] is True
        metrics = http.get(f"{base}/metrics", timeout=5).text
        assert "questdb_cache_invalidation_lag_seconds_bucket" in metrics
        assert "questdb_cache_trusted 1.0" in metrics


@pytest.mark.slow
def test_redis_restarted_paused_and_flushed_while_the_standby_lags(api, make_user, private_redis, settings, tmp_path):
    # Redis itself; tests/cache/test_local_layer.py has the same faults with each process's layer in front.
    settings.CACHE_LOCAL_MAX_BYTES = 0
    client = redis.Redis.from_url(settings.REDIS_URL)
    consumer = ConsumerProcess(
        redis_url=settings.REDIS_URL,
        log_path=tmp_path / "consumer.log",
        REDIS_SOCKET_TIMEOUT_MS="100",
        REDIS_CONNECT_TIMEOUT_MS="100",
    ).start()
    user = make_user(username="Outage", email="outage@example.com")
    path = f"/api/v1/users/{user.id}/"
    try:
        consumer.wait_for("leading")
        wait_for_invalidation(client)

        # Stopped (and back with its data: the value and an old heartbeat), a change made meanwhile.
        assert api.get(path).json()["name"] == ""
        client.save()
        private_redis.stop()
        external("UPDATE users SET name = 'while stopped' WHERE id = %s", [user.id])
        time.sleep(settings.CACHE_MAX_STALENESS)  # the saved heartbeat is past the bound when Redis returns
        assert api.get(path).json()["name"] == "while stopped"  # Redis is down: from the database
        private_redis.start()
        time.sleep(settings.CACHE_RETRY_INTERVAL)
        assert api.get(path).json()["name"] == "while stopped"  # the old heartbeat is not trusted
        wait_for_invalidation(client)
        assert api.get(path).json()["name"] == "while stopped"
        assert b"while stopped" in client.get(user_id_key(user.id).value)  # cached again, the new row

        # Paused (CLIENT PAUSE): every client waits, a change is made meanwhile.
        client.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        external("UPDATE users SET name = 'while paused' WHERE id = %s", [user.id])
        assert api.get(path).json()["name"] == "while paused"
        time.sleep(1.6)
        assert api.get(path).json()["name"] == "while paused"  # at once after the pause
        wait_for_invalidation(client)
        assert api.get(path).json()["name"] == "while paused"

        # Flushed while the standby's replay is paused: the stamps are gone, the standby has the old row.
        settings.DB_REPLICA_MAX_LAG = 60  # the paused standby keeps taking plain reads
        wait_for_replay()
        replicas.monitor.check_now()
        client.delete(user_id_key(user.id).value)
        assert api.get(path).json()["name"] == "while paused"  # filled (possibly from the standby)
        with connect("replica_1") as standby:
            standby.execute("SELECT pg_wal_replay_pause()")
        try:
            external("UPDATE users SET name = 'before the flush' WHERE id = %s", [user.id])
            wait_for_invalidation(client)
            client.flushall()
            wait_for_invalidation(client)  # the consumer saw the loss and started a new epoch
            replicas.monitor.check_now()
            assert replicas.monitor.choose() == "replica_1"  # plain reads would still go to the standby...
            assert api.get(path).json()["name"] == "before the flush"  # ...the fill reads at the epoch's floor
            assert b"before the flush" in client.get(user_id_key(user.id).value)
        finally:
            with connect("replica_1") as standby:
                standby.execute("SELECT pg_wal_replay_resume()")
        wait_for_replay()
        assert api.get(path).json()["name"] == "before the flush"
    finally:
        consumer.stop()


def test_a_truncate_and_a_requested_reset_drop_every_cached_value(api, world, tmp_path, shared_redis):
    user, first, _second, _session = world
    consumer = ConsumerProcess(redis_url=settings.REDIS_URL, log_path=tmp_path / "consumer.log").start()
    try:
        consumer.wait_for("leading")
        wait_for_invalidation(shared_redis)
        assert api.get(f"/api/v1/characters/{first.id}/").status_code == 200
        external("TRUNCATE characters")
        wait_for_invalidation(shared_redis)
        assert api.get(f"/api/v1/characters/{first.id}/").status_code == 404
        assert api.get(f"/api/v1/characters/?user={user.id}").json()["count"] == 0

        assert api.get(f"/api/v1/users/{user.id}/").status_code == 200
        assert shared_redis.exists(user_id_key(user.id).value)
        from django.core.management import call_command

        call_command("invalidate_cache", "--reset")
        consumer.wait_for("new cache epoch", count=2)
        assert not shared_redis.exists(user_id_key(user.id).value)
        wait_for_invalidation(shared_redis)
        assert invalidation.status(shared_redis)["trusted"]
    finally:
        consumer.stop()


def test_without_a_consumer_the_cache_is_not_trusted_and_lookups_read_the_database(
    api, make_user, django_assert_num_queries
):
    user = make_user()
    for _ in range(2):
        with django_assert_num_queries(1):
            assert api.get(f"/api/v1/users/{user.id}/").status_code == 200
    report = api.get("/readyz").json()["cache"]
    assert report["trusted"] is False
    assert "no invalidation heartbeat" in report["reason"]


def test_the_trigger_records_old_and_new_identities_of_an_external_rename(make_user):
    user = make_user(username="Before", email="before@example.com")
    with connect() as conn:
        conn.execute("DELETE FROM cache_changes")
        conn.execute("UPDATE users SET username = 'After' WHERE id = %s", [user.id])
        table, op, rows = conn.execute("SELECT table_name, op, rows FROM cache_changes").fetchone()
    assert (table, op) == ("users", "UPDATE")
    assert sorted(row["username"] for row in rows) == ["After", "Before"]
    assert {row["email"] for row in rows} == {"before@example.com"}


@pytest.mark.parametrize(
    ("statement", "recorded"),
    [
        ("UPDATE users SET name = 'renamed', updated_at = now() WHERE id = %s", ["casefold"]),
        # Case matters to the comparison: the old spelling's row is recorded too, whatever the fold makes of it.
        ("UPDATE users SET username = 'CaseFold' WHERE id = %s", ["CaseFold", "casefold"]),
        ("UPDATE users SET email = 'moved@example.com' WHERE id = %s", ["casefold", "casefold"]),
    ],
)
def test_an_update_records_the_old_row_only_when_a_key_column_changed(make_user, statement, recorded):
    user = make_user(username="casefold", email="casefold@example.com")
    with connect() as conn:
        conn.execute("DELETE FROM cache_changes")
        conn.execute(statement, [user.id])
        rows = conn.execute("SELECT rows FROM cache_changes").fetchone()[0]
    assert sorted(row["username"] for row in rows) == sorted(recorded)
    assert {row["id"] for row in rows} == {str(user.id)}


def test_a_writers_own_operator_ahead_of_pg_catalog_cannot_hide_a_rename_from_the_trigger(make_user):
    """The capture functions run as their owner with the writer's search_path (migration 0006): one that puts its
    own `<>` for text, saying nothing ever differs, ahead of pg_catalog still has a rename recorded old and new."""
    user = make_user(username="Decoy", email="decoy@example.com")
    schema = f"questdb_test_{uuid.uuid4().hex[:8]}"
    with connect() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(f"CREATE FUNCTION {schema}.same(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT false'")
            conn.execute(f"CREATE OPERATOR {schema}.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = {schema}.same)")
            conn.execute(f"SET search_path = {schema}, pg_catalog, public")
            assert conn.execute("SELECT 'a'::text <> 'b'::text").fetchone()[0] is False  # the decoy is in effect
            conn.execute("DELETE FROM cache_changes")
            conn.execute("UPDATE users SET username = 'Renamed' WHERE id = %s", [user.id])
            rows = conn.execute("SELECT rows FROM cache_changes").fetchone()[0]
        finally:
            conn.execute("RESET search_path")
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    assert sorted(row["username"] for row in rows) == ["Decoy", "Renamed"]


def test_a_rolled_back_external_change_leaves_no_trace_in_the_outbox(make_user):
    user = make_user()
    with connect() as conn:
        conn.execute("DELETE FROM cache_changes")
        with conn.transaction(force_rollback=True):
            conn.execute("UPDATE users SET name = 'never' WHERE id = %s", [user.id])
        assert conn.execute("SELECT count(*) FROM cache_changes").fetchone()[0] == 0


def test_a_consumer_whose_role_does_not_own_the_outbox_says_so_instead_of_vacuuming_it():
    role = f"questdb_test_not_owner_{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    consumer = invalidation.Consumer(log=lines.append)
    with connect() as conn:
        assert consumer.can_vacuum(conn) is True  # the tests' role owns it
        assert lines == []
        conn.execute(f'CREATE ROLE "{role}"')
        try:
            conn.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
            conn.execute(f'SET ROLE "{role}"')
            assert consumer.can_vacuum(conn) is False
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')
    assert len(lines) == 1
    assert "cannot vacuum" in lines[0]
