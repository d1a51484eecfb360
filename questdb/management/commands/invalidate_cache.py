"""`manage.py invalidate_cache`: the consumer that turns every committed change into cache invalidations.

Run one or more of these beside the app (its own process or container). One leads, under
a PostgreSQL advisory lock on a direct connection; the others follow and take over within
CACHE_INVALIDATION_RETRY seconds when the leader stops or dies (the server drops its session
and the lock with it). See questdb/cache/invalidation.py for the protocol and
docs/operations.md for running, monitoring and recovering it.
"""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from questdb.cache.invalidation import Consumer, request_reset
from questdb.db.direct import is_postgresql


class Command(BaseCommand):
    help = "Invalidate the lookup cache from the database's committed changes (the cache_changes outbox)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Ask the running consumer to drop every cached value and start a new epoch, then exit.",
        )

    def handle(self, *args, reset: bool, **options) -> None:
        if not settings.REDIS_URL:
            raise CommandError("The lookup cache is off (REDIS_URL is unset): there is nothing to invalidate.")
        if not is_postgresql(connections[DEFAULT_DB_ALIAS].settings_dict):
            raise CommandError("Change capture needs PostgreSQL (the embedded SQLite default has no lookup cache).")
        if reset:
            request_reset()
            self.stdout.write("Reset requested: the leading consumer drops every cached value and starts a new epoch.")
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        Consumer().run(stop)
