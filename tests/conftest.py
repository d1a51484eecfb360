"""Shared fixtures. The suite runs against the real PostgreSQL primary, its hot standby and Redis."""

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.test.utils import setup_databases, teardown_databases

from accounts.models import User
from questdb.api import auth as api_keys
from questdb.cache.store import lookup_cache
from questdb.db import replicas
from questdb.models import ServiceAPIKey
from tests.cache.consumer import ConsumerProcess, start_consumer_thread


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    """Create the test database on the primary only; replicas see it through replication.

    Replica aliases are declared test mirrors so that Django never creates or flushes
    a database on the read-only standby, then pointed back at the standby itself.
    """
    originals = {alias: dict(connections[alias].settings_dict) for alias in settings.REPLICA_ALIASES}
    for alias in originals:
        connections[alias].settings_dict["TEST"]["MIRROR"] = "default"
    with django_db_blocker.unblock():
        created = setup_databases(verbosity=0, interactive=False, aliases={"default", *originals})
    test_name = connections["default"].settings_dict["NAME"]
    for alias, original in originals.items():
        connections[alias].settings_dict = {
            **original,
            "NAME": test_name,
            "TEST": {**original["TEST"], "MIRROR": "default"},
        }
    yield
    replicas.monitor.stop()
    for connection in connections.all():
        connection.close()
        if hasattr(connection, "close_pool"):
            connection.close_pool()
    with django_db_blocker.unblock():
        teardown_databases(created, verbosity=0)


@pytest.fixture(autouse=True)
def _fresh_cache_state():
    """Each test starts with an empty lookup cache and no remembered API-key verdicts."""
    lookup_cache.reset()
    api_keys.verdicts.clear()
    if settings.REDIS_URL:
        from django_redis import get_redis_connection

        get_redis_connection("default").flushdb()
    yield
    lookup_cache.reset()


@pytest.fixture
def make_user(db):
    counter = iter(range(1, 10**6))

    def make(**fields) -> User:
        number = next(counter)
        fields.setdefault("username", f"player{number}")
        fields.setdefault("email", f"player{number}@example.com")
        return User.objects.create(**fields)

    return make


@pytest.fixture
def read_key(db) -> str:
    return ServiceAPIKey.objects.create_key(name="world-server", scope="read")[1]


@pytest.fixture
def write_key(db) -> str:
    return ServiceAPIKey.objects.create_key(name="character-server", scope="write")[1]


@pytest.fixture
def api(client, write_key):
    """A Django test client that sends the write key, as a calling service would."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {write_key}"
    api_keys.caller_for_key(write_key)  # remembered, so query counts show only the endpoint's own
    return client


@pytest.fixture
def invalidation_process(tmp_path):
    """`manage.py invalidate_cache` in its own process on the suite's Redis, leading, stopped after the test."""
    consumer = ConsumerProcess(redis_url=settings.REDIS_URL, log_path=tmp_path / "consumer.log").start()
    consumer.wait_for("leading")
    yield consumer
    consumer.stop()


@pytest.fixture
def invalidation_consumer(transactional_db, settings):
    """A running invalidation consumer (the cache is trusted only while one runs), stopped after the test."""
    settings.CACHE_INVALIDATION_POLL = 0.005
    settings.CACHE_INVALIDATION_RETRY = 0.1
    # These tests are about something else than the bound: a loaded machine must not stall the heartbeat past it.
    settings.CACHE_MAX_STALENESS = 5
    consumer, stop = start_consumer_thread()
    yield consumer
    stop.set()
    consumer.thread.join(timeout=10)


@pytest.fixture
def staff(client):
    """The Django test client, signed in to the admin as a superuser."""
    admin = get_user_model().objects.create_superuser("staff", "staff@example.com", "a-long-staff-password")
    client.force_login(admin)
    return client
