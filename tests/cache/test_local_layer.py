"""The lookup cache's layer in each process (questdb/cache/local.py), on real Redis, PostgreSQL and gunicorn.

A hit costs no round trip; every invalidation, reset and fault reaches it as it reaches Redis.
"""

import time
from datetime import timedelta

import pytest
import redis
import requests
from django.conf import settings
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.api import lookups as user_lookups
from characters.api import lookups as character_lookups
from characters.models import Character
from questdb.cache import invalidation
from questdb.cache.local import LocalCache
from questdb.cache.store import changes_channel
from questdb.db import router as routing
from sessions_app.api import lookups as session_lookups
from sessions_app.models import Session
from tests.cache.consumer import start_consumer_thread, wait_for_invalidation
from tests.cache.redis_monitor import Monitor
from tests.cache.test_cached_reads import WsgiClient
from tests.db.helpers import connect
from tests.e2e.conftest import gunicorn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def external(sql: str, params=()) -> None:
    """A statement another program commits (psql, the identity app)."""
    with connect() as conn:
        conn.execute(sql, params)


def name_of(user) -> str:
    return user_lookups.user_payload(user_id=user.id).body.decode()


@pytest.fixture
def monitor(private_redis):
    return Monitor(settings.REDIS_URL)


@pytest.fixture
def hero(make_user):
    return make_user(username="Near", email="near@example.com", name="first")


def test_a_repeated_lookup_costs_no_redis_command_and_no_query(hero, monitor, write_key):
    characters = [Character.objects.create(user=hero, name=f"Near{n}") for n in range(3)]
    ids = [str(c.id) for c in characters]
    wait_for_invalidation()
    front = WsgiClient(write_key)
    path = f"/api/v1/users/{hero.id}/"

    def lookups():
        name_of(hero)
        character_lookups.character_payloads(character_ids=ids)
        assert front.get(path).status == 200
        assert front.post_json("/api/v1/characters/batch/", {"ids": ids}).status == 200

    lookups()  # misses and Redis hits: kept in this process
    calls = front.django_calls
    with CaptureQueriesContext(connections["default"]) as queries:
        assert monitor.commands_during(lookups) == []
    assert len(queries) == 0
    assert front.django_calls == calls


def test_a_consistency_token_is_answered_by_redis_not_by_the_layer(hero, monitor, write_key):
    front = WsgiClient(write_key)
    path = f"/api/v1/users/{hero.id}/"
    assert front.get(path).status == 200
    name_of(hero)
    assert monitor.commands_during(lambda: front.get(path)) == []
    assert monitor.commands_during(lambda: front.get(path, x_consistency_token="0/1")) == ["EVALSHA"]
    with routing.request_scope(min_lsn=1):
        assert monitor.commands_during(lambda: name_of(hero)) == ["EVALSHA"]


def test_another_writers_change_reaches_the_layer_through_the_consumer(hero):
    assert '"first"' in name_of(hero)
    assert '"first"' in name_of(hero)  # kept
    external("UPDATE users SET name = 'second' WHERE id = %s", [hero.id])
    wait_for_invalidation()
    assert '"second"' in name_of(hero)


def test_a_reset_empties_every_layer(hero, invalidation_consumer):
    name_of(hero)
    assert '"first"' in name_of(hero)
    # A restore rewrites rows without the capture triggers: only a reset can tell the caches.
    with connect() as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")  # as pg_restore --disable-triggers does
        conn.execute("UPDATE users SET name = 'restored' WHERE id = %s", [hero.id])
    wait_for_invalidation()
    assert '"first"' in name_of(hero)  # nothing told the cache
    invalidation.request_reset()
    deadline = time.monotonic() + 5
    while '"restored"' not in name_of(hero):
        assert time.monotonic() < deadline, "the reset did not reach the layer"
        time.sleep(0.01)


@pytest.mark.without_consumer
def test_the_layer_stops_serving_once_invalidation_is_behind_by_the_bound(hero, settings):
    settings.CACHE_INVALIDATION_POLL = 0.005
    consumer, stop = start_consumer_thread()
    settings.CACHE_MAX_STALENESS = 0.5
    name_of(hero)
    assert '"first"' in name_of(hero)
    stop.set()
    consumer.thread.join(timeout=10)
    external("UPDATE users SET name = 'unseen' WHERE id = %s", [hero.id])  # no consumer: no invalidation
    time.sleep(0.6)
    assert '"unseen"' in name_of(hero)  # past the bound: from the database


@pytest.mark.without_consumer
def test_a_paused_redis_is_served_around_within_the_bound(hero, private_redis, settings):
    settings.CACHE_INVALIDATION_POLL = 0.005
    consumer, stop = start_consumer_thread()
    settings.CACHE_MAX_STALENESS = 0.5
    try:
        name_of(hero)
        assert '"first"' in name_of(hero)
        private_redis.pause()  # heartbeats and invalidations stop arriving; sockets stay open
        external("UPDATE users SET name = 'while paused' WHERE id = %s", [hero.id])
        time.sleep(0.6)
        assert '"while paused"' in name_of(hero)
        private_redis.resume()
        wait_for_invalidation()
        assert '"while paused"' in name_of(hero)
    finally:
        private_redis.resume()
        stop.set()
        consumer.thread.join(timeout=10)


def test_a_session_past_its_expiry_is_never_served_from_the_layer(make_user, write_key):
    front = WsgiClient(write_key)
    Session.objects.create(user=make_user(), token="near-gone", expires_at=timezone.now() + timedelta(seconds=1))
    for _ in range(2):
        assert front.post_json("/api/v1/sessions/lookup/", {"token": "near-gone"}).status == 200  # kept
    assert session_lookups.session_payload_by_token(token="near-gone").body
    time.sleep(1.1)
    gone = front.post_json("/api/v1/sessions/lookup/", {"token": "near-gone"})
    assert (gone.status, gone.json()["code"]) == (410, "session_expired")


def test_redis_down_turns_the_layer_off(hero, private_redis):
    name_of(hero)
    assert '"first"' in name_of(hero)
    private_redis.stop()
    external("UPDATE users SET name = 'redis down' WHERE id = %s", [hero.id])
    assert '"redis down"' in name_of(hero)  # from the database, at once


def test_a_lost_subscription_empties_the_layer(hero, private_redis):
    client = redis.Redis.from_url(settings.REDIS_URL)
    name_of(hero)
    assert '"first"' in name_of(hero)
    assert client.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1
    # Invalidated while the layer was not listening: it must not serve what it kept.
    external("UPDATE users SET name = 'unheard' WHERE id = %s", [hero.id])
    wait_for_invalidation()
    assert '"unheard"' in name_of(hero)
    assert '"unheard"' in name_of(hero)


CHANNEL = "questdb-unit:changes"  # not the cache's own: the running consumer's heartbeats stay out


def layer(client: redis.Redis, max_bytes: int = 1 << 20, max_staleness: float = 5.0) -> LocalCache:
    pool = client.connection_pool
    return LocalCache(
        max_bytes=max_bytes,
        channel=CHANNEL,
        connect=lambda: pool.connection_class(**pool.connection_kwargs),
        max_staleness=lambda: max_staleness,
    )


def heartbeat(client: redis.Redis, age_ms: int = 0) -> None:
    """What the consumer publishes: everything committed before `age_ms` ago (Redis's clock) is invalidated."""
    seconds, micros = client.time()
    sent_ms = seconds * 1000 + micros // 1000 - age_ms
    client.publish(CHANNEL, f"Bepoch {sent_ms} {sent_ms}")


def test_an_invalidation_between_asking_redis_and_keeping_cancels_the_keep(private_redis):
    client = redis.Redis.from_url(settings.REDIS_URL)
    near = layer(client)
    token = near.reserve(["a", "b"])
    client.publish(CHANNEL, 'K["a"]')  # arrives while "Redis answers"
    heartbeat(client)
    time.sleep(0.05)
    near.keep(token, {"a": b"old a", "b": b"b"})
    assert near.get_many(["a", "b"]) == {"b": b"b"}
    client.publish(CHANNEL, 'K["b"]')
    time.sleep(0.05)
    assert near.get_many(["a", "b"]) == {}


def test_nothing_is_served_before_the_first_heartbeat_nor_after_a_new_epoch(private_redis):
    client = redis.Redis.from_url(settings.REDIS_URL)
    near = layer(client)
    near.keep(near.reserve(["a"]), {"a": b"a"})
    assert near.get_many(["a"]) == {}  # no heartbeat yet: not trusted
    heartbeat(client)
    time.sleep(0.05)
    assert near.get_many(["a"]) == {"a": b"a"}
    seconds, _ = client.time()
    client.publish(CHANNEL, f"Banother {seconds * 1000} {seconds * 1000}")
    time.sleep(0.05)
    assert near.get_many(["a"]) == {}


def test_heartbeats_read_late_do_not_stretch_the_bound(private_redis):
    """A heartbeat that waited on the socket (the process was idle) is as old as Redis's clock says."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    near = layer(client, max_staleness=0.5)
    near.keep(near.reserve(["a"]), {"a": b"a"})  # subscribed
    heartbeat(client, age_ms=300)
    time.sleep(0.05)
    assert near.get_many(["a"]) == {"a": b"a"}  # 350 ms behind: within the bound
    heartbeat(client)
    time.sleep(0.7)  # nobody reads the socket meanwhile, and no newer heartbeat comes
    assert near.get_many(["a"]) == {}  # what it covers is 700 ms old, though it was read just now


def test_the_layer_holds_at_most_its_bytes(private_redis):
    client = redis.Redis.from_url(settings.REDIS_URL)
    near = layer(client, max_bytes=4096)
    near.reserve([])  # subscribes
    heartbeat(client)
    time.sleep(0.05)
    names = [f"key{n}" for n in range(20)]
    for name in names:
        near.keep(near.reserve([name]), {name: b"x" * 300})
    assert near.held_bytes <= 4096
    assert list(near.get_many(names)) == names[-8:]  # the most recently kept, (300 + 200) bytes each


def test_a_write_through_one_worker_is_never_followed_by_a_stale_read_from_another(
    make_user, write_key, invalidation_consumer
):
    character = Character.objects.create(user=make_user(), name="Courier")
    path = f"/api/v1/characters/{character.id}/"
    wait_for_invalidation()
    with gunicorn(WEB_CONCURRENCY="2") as base:

        def fresh_connection() -> requests.Session:
            http = requests.Session()
            http.headers.update({"Authorization": f"Api-Key {write_key}", "Connection": "close"})
            return http

        for _ in range(20):  # both workers keep the character
            assert fresh_connection().get(base + path, timeout=5).status_code == 200
        for money in range(1, 41):
            etag = fresh_connection().get(base + path, timeout=5).headers["ETag"]
            written = fresh_connection().patch(
                base + path, json={"money": money}, headers={"If-Match": etag}, timeout=5
            )
            assert written.status_code == 200, written.text
            for _ in range(3):
                assert fresh_connection().get(base + path, timeout=5).json()["money"] == money
        # Both workers held a subscription, so both answered lookups from their own layer.
        subscribers = redis.Redis.from_url(settings.REDIS_URL).pubsub_numsub(changes_channel())[0][1]
        assert subscribers >= 2
