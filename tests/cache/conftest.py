import contextlib
import shutil
import subprocess
import time

import pytest
import redis

from questdb.cache.store import lookup_cache
from tests.e2e.conftest import free_port


@pytest.fixture(autouse=True)
def _primary_only_reads(settings):
    """Cache tests read from the primary unless they say otherwise (no replica is 'fresh enough')."""
    settings.DB_REPLICA_MAX_LAG = -1


@pytest.fixture
def private_redis(settings, tmp_path):
    """A redis-server of this test's own on a spare port; the shared one on 6379 is never touched."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required"
    port = free_port()

    class Server:
        process: subprocess.Popen | None = None

        def start(self) -> None:
            self.process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(tmp_path),
                ],
                stdout=subprocess.DEVNULL,
            )
            client = redis.Redis(port=port)
            for _ in range(100):
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                time.sleep(0.05)
            raise RuntimeError("private redis-server did not start")

        def stop(self) -> None:
            if self.process and self.process.poll() is None:
                self.process.kill()
                self.process.wait()

        def pause(self) -> None:
            self.process.send_signal(19)  # SIGSTOP: the server hangs, sockets stay open

        def resume(self) -> None:
            self.process.send_signal(18)  # SIGCONT

    server = Server()
    server.start()
    url = f"redis://127.0.0.1:{port}/0"
    settings.REDIS_URL = url
    settings.CACHE_RETRY_INTERVAL = 0.3
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": url,
            "OPTIONS": {**settings.CACHES["default"]["OPTIONS"], "SOCKET_TIMEOUT": 0.1, "SOCKET_CONNECT_TIMEOUT": 0.1},
        }
    }
    lookup_cache.reset()
    yield server
    server.resume() if server.process and server.process.poll() is None else None
    server.stop()
    lookup_cache.reset()


@pytest.fixture(autouse=True)
def _invalidation_running(request):
    """Cache tests run with the invalidation consumer (without it the cache is never trusted), on the test's Redis."""
    db = request.node.get_closest_marker("django_db")
    if request.node.get_closest_marker("without_consumer") or not (db and db.kwargs.get("transaction")):
        yield None
        return
    for redis_fixture in ("private_redis", "sentinel_topology"):
        if redis_fixture in request.fixturenames:
            request.getfixturevalue(redis_fixture)
    yield request.getfixturevalue("invalidation_consumer")
