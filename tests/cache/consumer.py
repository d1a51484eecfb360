"""The invalidation consumer in a thread of the test process, and waiting for it to catch up."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import connections

from questdb.cache import invalidation

ROOT = Path(__file__).resolve().parents[2]


def start_consumer_thread(timeout: float = 5.0):
    """The invalidation consumer in a thread of this process, against the test database and the current Redis.

    Returns (consumer, stop): set `stop` and join `consumer.thread` to end it. Empties the outbox first, and
    waits until the cache is trusted.
    """
    from django_redis import get_redis_connection

    client = get_redis_connection("default")
    # What earlier tests left in the outbox (their tables' flush) concerns a Redis database emptied since.
    with connections["default"].cursor() as cursor:
        cursor.execute("DELETE FROM cache_changes")
    consumer = invalidation.Consumer(redis_client=client)
    stop = threading.Event()

    def run():
        try:
            consumer.run(stop)
        finally:
            connections.close_all()

    consumer.thread = threading.Thread(target=run, name="invalidation-consumer", daemon=True)
    consumer.thread.start()
    deadline = time.monotonic() + timeout
    while not invalidation.status(client)["trusted"]:
        assert time.monotonic() < deadline, "the invalidation consumer did not start"
        time.sleep(0.005)
    return consumer, stop


def wait_for_invalidation(client=None, timeout: float = 5.0) -> None:
    """Until the consumer's heartbeat says every change committed before now has been invalidated."""
    from django_redis import get_redis_connection

    client = client or get_redis_connection("default")
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    deadline = time.monotonic() + timeout
    while int(client.hget(invalidation.heartbeat_key(), "seen_ms") or 0) <= now_ms:
        assert time.monotonic() < deadline, "the invalidation consumer did not catch up"
        time.sleep(0.005)


class ConsumerProcess:
    """`manage.py invalidate_cache` in its own process, against the test database and a given Redis."""

    def __init__(self, *, redis_url: str, log_path, **env: str) -> None:
        self.redis_url, self.log_path, self.extra_env = redis_url, log_path, env
        self.process: subprocess.Popen | None = None

    def start(self) -> "ConsumerProcess":
        primary = connections["default"].settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{primary['USER']}@{primary['HOST']}:{primary['PORT']}/{primary['NAME']}",
            "REDIS_URL": self.redis_url,
            "CACHE_KEY_PREFIX": settings.CACHE_KEY_PREFIX,
            "CACHE_INVALIDATION_POLL": "0.01",
            "CACHE_INVALIDATION_RETRY": "0.2",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        env.pop("DB_READ_HOST", None)
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "invalidate_cache"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        return self

    def output(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            assert self.process.poll() is None, f"the consumer exited: {self.output()[-2000:]}"
            assert time.monotonic() < deadline, f"the consumer never logged {text!r}: {self.output()[-2000:]}"
            time.sleep(0.02)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()
