"""Routing on the real hot standby: where reads and writes land, lag, and consistency tokens."""

import time

import pytest
from django.db import connections, router, transaction

from characters.models import Character
from questdb.db import replicas
from questdb.db.router import PrimaryReplicaRouter
from tests.db.helpers import connect, flush_statistics, index_scans, wait_for_replay, wait_until

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture(autouse=True)
def _no_lookup_cache(settings):
    # These tests watch the databases; the cache would answer for them.
    settings.REDIS_URL = ""


@pytest.fixture
def character(make_user) -> Character:
    character = Character.objects.create(user=make_user(), name="Watcher")
    wait_for_replay()
    replicas.monitor.check_now()
    return character


@pytest.fixture
def paused_standby():
    with connect("replica_1") as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        # Never leave the shared standby paused, whatever the test did.
        with connect("replica_1") as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
        wait_for_replay()


def test_reads_land_on_the_standby_as_its_own_counters_show(api, character):
    flush_statistics()
    time.sleep(0.2)
    on_standby, on_primary = index_scans("replica_1", "characters"), index_scans("default", "characters")
    for _ in range(20):
        assert api.get(f"/api/v1/characters/{character.id}/").status_code == 200
    flush_statistics()
    assert wait_until(lambda: index_scans("replica_1", "characters") - on_standby >= 20, timeout=5)
    assert index_scans("default", "characters") == on_primary


def test_writes_transactions_and_locking_reads_use_the_primary(character):
    assert Character.objects.get(id=character.id)._state.db == "replica_1"
    with transaction.atomic():
        assert Character.objects.get(id=character.id)._state.db == "default"
        assert Character.objects.select_for_update().get(id=character.id)._state.db == "default"
    character.money = 5
    character.save()
    assert character._state.db == "default"


def test_migrations_and_foreign_relations_are_refused_on_replicas(character):
    routing = PrimaryReplicaRouter()
    assert routing.allow_migrate("default", "characters")
    assert not routing.allow_migrate("replica_1", "characters")
    from_replica = Character.objects.get(id=character.id)
    assert router.allow_relation(from_replica, character)
    stranger = Character(id=character.id)
    stranger._state.db = "elsewhere"
    assert not routing.allow_relation(from_replica, stranger)


def test_a_write_response_carries_a_consistency_token(api, character):
    response = api.patch(f"/api/v1/characters/{character.id}/", {"money": 3}, content_type="application/json")
    assert response.status_code == 200
    token = response["X-Consistency-Token"]
    with connect() as conn:
        assert conn.execute("SELECT %s::pg_lsn <= pg_current_wal_lsn()", [token]).fetchone()[0]


def test_lag_the_token_and_bounded_staleness(api, character, settings, paused_standby):
    settings.DB_REPLICA_MAX_LAG = 2.0
    url = f"/api/v1/characters/{character.id}/"
    response = api.patch(url, {"money": 42}, content_type="application/json")
    token = response["X-Consistency-Token"]

    # With the token: the standby has not replayed the write, so the primary answers.
    assert api.get(url, HTTP_X_CONSISTENCY_TOKEN=token).json()["money"] == 42
    # Without it, and while the lag is within bounds, the standby may answer with the old value.
    assert api.get(url).json()["money"] == 0

    # Once the lag passes DB_REPLICA_MAX_LAG, the standby stops taking reads.
    assert wait_until(lambda: api.get(url).json()["money"] == 42, timeout=settings.DB_REPLICA_MAX_LAG + 3)
    assert replicas.monitor.choose() is None
    assert api.get("/readyz").json()["databases"]["replica_1"]["taking_reads"] is False

    with connect("replica_1") as conn:
        conn.execute("SELECT pg_wal_replay_resume()")
    wait_for_replay()
    assert wait_until(lambda: replicas.monitor.choose() == "replica_1", timeout=3)
    assert api.get(url).json()["money"] == 42


def test_a_request_keeps_reading_from_the_database_it_started_on(character, paused_standby):
    from questdb.db import router as routing

    with routing.request_scope():
        first = Character.objects.get(id=character.id)._state.db
        Character.objects.using("default").filter(id=character.id).update(money=7)
        time.sleep(0.6)  # the monitor sees the lag grow; the request must not switch mid-way
        assert Character.objects.get(id=character.id)._state.db == first


def test_readiness_reports_each_alias(api, character):
    body = api.get("/readyz").json()
    assert body["databases"]["default"]["reachable"] is True
    standby = body["databases"]["replica_1"]
    assert standby["reachable"] is True
    assert standby["taking_reads"] is True
    assert standby["replay_lag_seconds"] is not None
    assert connections["replica_1"].settings_dict["PORT"] == 5433
