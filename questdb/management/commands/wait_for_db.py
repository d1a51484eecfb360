"""`manage.py wait_for_db`: wait, within a bound, until a database accepts connections.

The container entry point runs it before migrating: a primary that is still starting
(or restarting) is waited for; one that does not come up in time fails the start with
one clear line instead of a traceback.
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from questdb.db.direct import describe, first_line, is_postgresql, pg_connect

# Refusals that waiting cannot fix: bad credentials, no such role or database, no pg_hba.conf entry.
PERMANENT_ERRORS = ("password authentication failed", "does not exist", "no pg_hba.conf entry")


class Command(BaseCommand):
    help = "Wait until the database accepts connections; exit 1 with the last error after --timeout seconds."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: default).")
        parser.add_argument("--timeout", type=float, default=60.0, help="Seconds to wait in all (default 60).")
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between attempts (default 1).")

    def handle(self, *args, database: str, timeout: float, interval: float, **options) -> None:
        settings_dict = connections[database].settings_dict
        target = f"database {database!r} ({describe(settings_dict)})"
        started = time.monotonic()
        deadline = started + max(0.0, timeout)
        attempts = 0
        last_error = "no attempt made"
        while True:
            attempts += 1
            remaining = deadline - time.monotonic()
            try:
                self._check(database, settings_dict, connect_timeout=max(1.0, min(5.0, remaining)))
            except Exception as error:  # every failure is reported, none is raised
                last_error = first_line(error)
                if any(marker in str(error) for marker in PERMANENT_ERRORS):
                    raise CommandError(f"{target} refused the connection: {last_error}") from None
                if attempts == 1:
                    self.stdout.write(f"Waiting up to {timeout:g}s for {target}: {last_error}")
                    self.stdout.flush()
            else:
                self.stdout.write(f"{target} is up ({attempts} attempt(s), {time.monotonic() - started:.1f}s).")
                return
            if time.monotonic() + interval > deadline:
                raise CommandError(
                    f"{target} did not accept connections within {timeout:g}s ({attempts} attempt(s)). "
                    f"Last error: {last_error}. Check DATABASE_URL (or DB_HOST/DB_PORT) and that the server is running."
                )
            time.sleep(interval)

    @staticmethod
    def _check(database: str, settings_dict: dict, *, connect_timeout: float) -> None:
        if not is_postgresql(settings_dict):
            connection = connections[database]
            connection.ensure_connection()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return
        with pg_connect(settings_dict, application_name="questdb-wait-for-db", connect_timeout=connect_timeout) as conn:
            conn.execute("SELECT 1")
