"""What a private redis-server receives from clients, seen with MONITOR: round trips counted, not guessed."""

import hashlib
import threading
import time

import redis

from questdb.cache.store import LUA

# What only the invalidation consumer sends: its heartbeat and epoch scripts (by SHA) and the lag histogram.
CONSUMER_MARKS = (
    *(hashlib.sha1((LUA / f"{name}.lua").read_bytes()).hexdigest() for name in ("heartbeat", "epoch")),
    ":invalidation:lag",
)


class Monitor:
    """The commands a private redis-server receives from clients (MONITOR), between two markers."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.seen: list[dict] = []
        self.ready = threading.Event()
        threading.Thread(target=self._listen, daemon=True).start()
        assert self.ready.wait(5)

    def _listen(self) -> None:
        monitor = self.client.monitor()
        with monitor:
            self.ready.set()
            try:
                for command in monitor.listen():
                    self.seen.append(command)
            except (redis.ConnectionError, OSError):
                return  # the server was stopped

    def _mark(self, text: str) -> None:
        self.client.echo(text)
        deadline = time.monotonic() + 5
        while not any(c["command"] == f"ECHO {text}" for c in self.seen):
            assert time.monotonic() < deadline, "MONITOR did not see the marker"
            time.sleep(0.005)

    def commands_during(self, action) -> list[str]:
        self._mark("questdb-start")
        action()
        self._mark("questdb-end")
        names = [c["command"] for c in self.seen]
        window = self.seen[names.index("ECHO questdb-start") + 1 : names.index("ECHO questdb-end")]
        self.seen.clear()
        # Commands a Lua script runs show up too, from the "lua" client: they are not round trips. The
        # invalidation consumer's heartbeat (its own connection, every few milliseconds) is not the lookup's.
        return [
            c["command"].split()[0].upper()
            for c in window
            if c.get("client_type") != "lua" and not any(mark in c["command"] for mark in CONSUMER_MARKS)
        ]
