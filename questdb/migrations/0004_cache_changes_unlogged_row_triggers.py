"""Cheaper change capture: row-level triggers and an UNLOGGED outbox, whose loss the consumer detects.

0003's statement-level triggers with transition tables cost a single-row UPDATE the
transition tuplestores and an aggregate query; a row-level trigger is one INSERT. The outbox
rows live for milliseconds but were WAL-logged, flushed with each commit, replayed by every
standby and logged again when the consumer deleted them. UNLOGGED, they cost no WAL.

An unlogged table is emptied by crash recovery, and is empty on a promoted standby or a
restored base backup: committed changes that were not yet invalidated are then gone. The
consumer detects exactly that loss: `cache_capture_marker` (UNLOGGED too, so it goes with the
outbox) holds a token the consumer wrote and also keeps in the Redis heartbeat; every batch reads
it in the same statement as the changes. A missing or different token means the outbox may have
lost changes, and the consumer drops every cached value and starts a new epoch (as when Redis
loses data). A clean restart keeps both (unlogged tables survive a clean shutdown).

The functions are SECURITY DEFINER (a writer needs no privilege on the outbox) without a SET
search_path clause (it would cost every row a configuration save and restore): they name every
table and function with its schema and use no operator, so a writer's search_path cannot
redirect them. One function per table and operation, so no branch on TG_OP.
0003's TRUNCATE triggers and their function stay. PostgreSQL only, as 0003.
"""

from importlib import import_module

from django.db import migrations

# Captured tables and columns (as 0003: the columns a table's cache keys are computed from).
CAPTURED = {
    "users": ("id", "username", "email"),
    "characters": ("id", "user_id"),
    "sessions": ("id", "user_id", "token"),
}
CAPTURES_INSERTS = {"characters"}  # as 0003: only a list can contain a new row

MARKER = "CREATE UNLOGGED TABLE cache_capture_marker (token text NOT NULL)"


def _record(alias: str, columns: tuple[str, ...]) -> str:
    return "pg_catalog.jsonb_build_object(" + ", ".join(f"'{c}', {alias}.{c}" for c in columns) + ")"


def _operations(table: str) -> dict[str, str]:
    """op -> the jsonb array of rows it records (UPDATE: old and new, a rename reaches the old keys)."""
    columns = CAPTURED[table]
    ops = {
        "UPDATE": f"pg_catalog.jsonb_build_array({_record('OLD', columns)}, {_record('NEW', columns)})",
        "DELETE": f"pg_catalog.jsonb_build_array({_record('OLD', columns)})",
    }
    if table in CAPTURES_INSERTS:
        ops["INSERT"] = f"pg_catalog.jsonb_build_array({_record('NEW', columns)})"
    return ops


def _function(table: str, op: str, rows: str) -> str:
    return f"""
CREATE FUNCTION public.questdb_capture_{table}_{op.lower()}() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
BEGIN
    INSERT INTO public.cache_changes (table_name, op, rows) VALUES ('{table}', '{op}', {rows});
    RETURN NULL;
END
$$
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # Changes committed before this point are in the logged outbox: SET UNLOGGED rewrites the table, keeping them.
    schema_editor.execute("ALTER TABLE cache_changes SET UNLOGGED")
    schema_editor.execute(MARKER)
    for table in CAPTURED:
        for op in ("update", "delete", "insert"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_capture_{op} ON {table}")
        for op, rows in _operations(table).items():
            schema_editor.execute(_function(table, op, rows))
            schema_editor.execute(
                f"CREATE TRIGGER {table}_capture_{op.lower()} AFTER {op} ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION public.questdb_capture_{table}_{op.lower()}()"
            )


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    previous = import_module("questdb.migrations.0003_cache_changes")
    for table in CAPTURED:
        for op in _operations(table):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_capture_{op.lower()} ON {table}")
            schema_editor.execute(f"DROP FUNCTION IF EXISTS public.questdb_capture_{table}_{op.lower()}()")
        for statement in previous._triggers(table):
            if "TRUNCATE" not in statement:  # kept by install
                schema_editor.execute(statement)
    schema_editor.execute("DROP TABLE IF EXISTS cache_capture_marker")
    schema_editor.execute("ALTER TABLE cache_changes SET LOGGED")


class Migration(migrations.Migration):
    dependencies = [("questdb", "0003_cache_changes")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
