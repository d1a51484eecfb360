"""`manage.py migrate_locked`: `migrate` under a PostgreSQL advisory lock.

Several app containers may start at once; each runs this before gunicorn. The first
one to take the session-level advisory lock migrates, the others wait for it and then
find nothing to do. The lock lives on a dedicated connection, so it is released when
the command ends, or when its process dies (the server drops the session).

It connects with DATABASE_OWNER_URL (default: DATABASE_URL) and refuses a role that cannot create tables
(the runtime role). Run as the owner role, it then grants questdb's roles their privileges on the tables
the migrations created (the identity tables are granted one by one; questdb/db/roles.py).
"""

import time

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from questdb.db import roles
from questdb.db.aliases import connect_as
from questdb.db.direct import describe, first_line, is_postgresql, pg_connect

# An arbitrary constant (bigint) that names "questdb schema migrations" among advisory locks.
MIGRATION_LOCK_ID = 727_374_001_000_001

HOLDER_SQL = """
    SELECT a.pid, coalesce(host(a.client_addr), 'local'), a.application_name
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = %(high)s AND l.objid = %(low)s AND l.objsubid = 1
"""


class Command(BaseCommand):
    help = "Apply migrations while holding a PostgreSQL advisory lock, so that concurrent starts migrate once."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="Database alias to migrate (default: default)."
        )
        parser.add_argument(
            "--lock-timeout",
            type=float,
            default=900.0,
            help="Seconds to wait for another process's migrations to finish; 0 waits forever (default 900).",
        )

    def handle(self, *args, database: str, lock_timeout: float, verbosity: int, **options) -> None:
        if database == DEFAULT_DB_ALIAS:
            connect_as(database, settings.DATABASE_OWNER_URL)
        settings_dict = connections[database].settings_dict
        if not is_postgresql(settings_dict):
            self.stdout.write(f"{describe(settings_dict)} has no advisory locks; migrating without one.")
            call_command("migrate", database=database, interactive=False, verbosity=verbosity)
            return
        try:
            lock_connection = pg_connect(settings_dict, application_name="questdb-migrate-lock")
        except psycopg.Error as error:
            raise CommandError(f"Cannot connect to {describe(settings_dict)}: {first_line(error)}") from None
        with lock_connection:
            with lock_connection.cursor() as cursor:
                if refusal := roles.migration_refusal(cursor):
                    raise CommandError(refusal)
            self._acquire(lock_connection, lock_timeout)
            try:
                call_command("migrate", database=database, interactive=False, verbosity=verbosity)
                self._grant(lock_connection)
            finally:
                lock_connection.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
        self.stdout.write("Released the migration lock.")

    def _grant(self, connection: psycopg.Connection) -> None:
        """As the owner role: the new tables' grants (default privileges cover all but the identity tables)."""
        configured = roles.Roles.from_settings()
        if not roles.managed(connection, configured):
            return
        statements, skipped = roles.apply_owner_grants(connection, configured)
        for statement in statements:
            self.stdout.write(f"{statement.shown};")
        self.stdout.write(f"Grants of questdb's roles: {len(statements)} statement(s).")
        if skipped:
            self.stdout.write(
                f"Not owned by {configured.owner.name}, so not granted: {', '.join(skipped)}. "
                "Run `manage.py db_roles` as a superuser."
            )

    def _acquire(self, connection: psycopg.Connection, timeout: float) -> None:
        if connection.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK_ID]).fetchone()[0]:
            self.stdout.write(f"Took the migration lock ({MIGRATION_LOCK_ID}).")
            return
        holder = self._holder(connection)
        limit = f"up to {timeout:g}s" if timeout > 0 else "without a time limit"
        self.stdout.write(f"Another process is migrating ({holder}); waiting {limit} for the migration lock.")
        self.stdout.flush()
        started = time.monotonic()
        connection.execute("SELECT set_config('lock_timeout', %s, false)", [f"{max(0, round(timeout * 1000))}ms"])
        try:
            connection.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
        except psycopg.errors.LockNotAvailable:
            raise CommandError(
                f"Gave up after {timeout:g}s waiting for the migration lock held by {self._holder(connection)}. "
                "Its migrations may still be running; raise --lock-timeout or check that process."
            ) from None
        finally:
            connection.execute("SELECT set_config('lock_timeout', '0', false)")
        self.stdout.write(f"Took the migration lock after waiting {time.monotonic() - started:.1f}s.")

    def _holder(self, connection: psycopg.Connection) -> str:
        row = connection.execute(
            HOLDER_SQL, {"high": MIGRATION_LOCK_ID >> 32, "low": MIGRATION_LOCK_ID & 0xFFFFFFFF}
        ).fetchone()
        if row is None:
            return "holder unknown"
        pid, client, application = row
        return f"pid {pid} from {client}" + (f", {application}" if application else "")
