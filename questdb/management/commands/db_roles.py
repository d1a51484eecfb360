"""`manage.py db_roles [--dry-run]`: create or update questdb's PostgreSQL roles and their grants.

Run it as a superuser (it creates roles and hands the database, the schema and every relation in it to
the owner role) before the first migration, and again whenever the role settings change; it is safe to
run on every start. `--dry-run` prints the SQL a run would execute (passwords masked) and changes nothing.
questdb/db/roles.py says what each role may do.
"""

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from questdb.db import roles
from questdb.db.direct import describe, first_line, is_postgresql, pg_connect


class Command(BaseCommand):
    help = "Create or update questdb's least-privilege PostgreSQL roles and grants (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: default).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the SQL a run would execute, passwords masked; apply nothing."
        )

    def handle(self, *args, database: str, dry_run: bool, **options) -> None:
        settings_dict = connections[database].settings_dict
        if not is_postgresql(settings_dict):
            self.stdout.write(f"-- {describe(settings_dict)} has no roles: nothing to do.")
            return
        configured = roles.Roles.from_settings()
        try:
            connection = pg_connect(settings_dict, application_name="questdb-db-roles")
        except psycopg.Error as error:
            raise CommandError(f"Cannot connect to {describe(settings_dict)}: {first_line(error)}") from None
        with connection:
            try:
                statements = roles.apply(connection, configured, dry_run=dry_run)
            except roles.RolesError as error:
                raise CommandError(str(error)) from None
            except psycopg.errors.InsufficientPrivilege as error:
                raise CommandError(
                    f"{describe(settings_dict)} may not manage roles ({first_line(error)}): run db_roles as a "
                    "superuser. Nothing was changed."
                ) from None
        action = "dry run, nothing applied" if dry_run else "applied"
        self.stdout.write(f"-- questdb roles for {describe(settings_dict)} ({action})")
        for statement in statements:
            self.stdout.write(f"{statement.shown};")
        if statements:
            self.stdout.write(f"-- {len(statements)} statement(s) {'to apply' if dry_run else 'applied'}.")
        else:
            self.stdout.write("-- no changes: the roles and grants are as configured.")
