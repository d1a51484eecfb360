"""Redis behind Sentinel, through django-redis's Sentinel client: caching follows a failover."""

import contextlib
import shutil
import subprocess

import pytest
import redis
from django.conf import settings as django_settings

from characters.models import Character
from questdb.cache.store import EVENTS, lookup_cache
from tests.cache.consumer import start_consumer_thread, wait_for_invalidation
from tests.db.helpers import wait_until
from tests.e2e.conftest import free_port

# The test points the cache at its Sentinel topology itself, then starts the invalidation consumer on it.
pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.slow,
    pytest.mark.without_consumer,
]


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([shutil.which("redis-server"), *args], stdout=subprocess.DEVNULL)


def _ping(port: int) -> bool:
    with contextlib.suppress(redis.RedisError):
        return redis.Redis(port=port, socket_timeout=0.2).ping()
    return False


@pytest.fixture
def sentinel_topology(tmp_path):
    master, replica, sentinel = free_port(), free_port(), free_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor questdb 127.0.0.1 {master} 1\n"
        "sentinel down-after-milliseconds questdb 500\n"
        "sentinel failover-timeout questdb 2000\n"
    )
    processes = {
        "master": _start(["--port", str(master), *common]),
        "replica": _start(["--port", str(replica), "--replicaof", "127.0.0.1", str(master), *common]),
        "sentinel": _start([str(config), "--sentinel"]),
    }
    try:
        assert wait_until(lambda: all(_ping(p) for p in (master, replica, sentinel)), timeout=10)

        def sentinel_knows_the_replica() -> bool:
            # Sentinel learns replicas from the master's INFO, polled every 10 s; no replica, no failover.
            known = redis.Redis(port=sentinel).sentinel_slaves("questdb")
            return any(r["port"] == replica and not r["is_odown"] and not r["is_sdown"] for r in known)

        assert wait_until(sentinel_knows_the_replica, timeout=20, interval=0.25)
        yield {"master": master, "replica": replica, "sentinel": sentinel, "processes": processes}
    finally:
        for process in processes.values():
            process.kill()
            process.wait()


def test_lookups_are_cached_through_sentinel_and_survive_a_failover(api, make_user, settings, sentinel_topology):
    settings.DB_REPLICA_MAX_LAG = -1
    settings.REDIS_URL = "redis://questdb/0"
    settings.CACHE_RETRY_INTERVAL = 0.2
    options = dict(django_settings.CACHES["default"]["OPTIONS"])
    options.update(
        CLIENT_CLASS="django_redis.client.SentinelClient",
        CONNECTION_FACTORY="django_redis.pool.SentinelConnectionFactory",
        SENTINELS=[("127.0.0.1", sentinel_topology["sentinel"])],
    )
    settings.CACHES = {
        "default": {**django_settings.CACHES["default"], "LOCATION": "redis://questdb/0", "OPTIONS": options}
    }
    lookup_cache.reset()
    settings.CACHE_INVALIDATION_RETRY = 0.1
    consumer, stop = start_consumer_thread()  # follows the failover like any Redis client of the master
    try:
        _cached_through_a_failover(api, make_user, sentinel_topology)
    finally:
        stop.set()
        consumer.thread.join(timeout=10)


def _cached_through_a_failover(api, make_user, sentinel_topology):
    character = Character.objects.create(user=make_user(), name="Sentinel")
    wait_for_invalidation()  # the insert's own invalidation (of the owner's list) has landed
    path = f"/api/v1/characters/{character.id}/"
    hits = EVENTS.labels("character", "hit")._value.get

    api.get(path)
    before = hits()
    assert api.get(path).status_code == 200
    assert hits() == before + 1
    assert redis.Redis(port=sentinel_topology["master"]).dbsize() > 0  # it really is the master that holds it

    sentinel_topology["processes"]["master"].kill()

    def promoted() -> bool:
        return redis.Redis(port=sentinel_topology["replica"]).info("replication")["role"] == "master"

    def served_from_cache() -> bool:
        before_hit = hits()
        assert api.get(path).status_code == 200  # every request answers, during and after the failover
        return hits() > before_hit

    assert wait_until(promoted, timeout=15)
    assert wait_until(served_from_cache, timeout=10)  # caching resumed on the new master
    api.patch(path, {"money": 3}, content_type="application/json")
    assert api.get(path).json()["money"] == 3
    lookup_cache.reset()
