"""Cheaper change capture for single-row writes: one UPDATE trigger per table, which compares the keys itself.

0005 told its two UPDATE triggers apart with WHEN conditions. PostgreSQL reads a trigger's WHEN condition back
from its stored form and prepares it for every statement that updates the table: for a single-row UPDATE
that cost about 6 µs per condition (measured on sessions with pgbench, four clients, two cores), more than
comparing three columns in PL/pgSQL, whose expressions are planned once per session. The function now records
the new row, and the old one too when a key column changed, as 0005's pair of triggers did.

PL/pgSQL plans its expressions with the writer's search_path, unlike a WHEN condition (resolved when the
trigger was created). The functions stay SECURITY DEFINER without a SET clause (see 0004), so every operator
and collation in them is schema-qualified: a writer's own `<>` in a schema ahead of pg_catalog cannot make a
renamed key look unchanged. PostgreSQL only, as 0003.
"""

from importlib import import_module

from django.db import migrations

captured = import_module("questdb.migrations.0004_cache_changes_unlogged_row_triggers")
previous = import_module("questdb.migrations.0005_capture_unchanged_keys_once")


def _differs(column: str) -> str:
    """OLD.column IS DISTINCT FROM NEW.column, text compared as bytes, with no name the search_path resolves."""
    collate = ' COLLATE pg_catalog."C"' if column in previous.TEXT_COLUMNS else ""
    return (
        f"(OLD.{column} IS NULL) OPERATOR(pg_catalog.<>) (NEW.{column} IS NULL) "
        f"OR (OLD.{column}{collate} OPERATOR(pg_catalog.<>) NEW.{column}{collate}) IS TRUE"
    )


def _function(table: str, columns: tuple[str, ...]) -> str:
    old, new = captured._record("OLD", columns), captured._record("NEW", columns)
    changed = "\n        OR ".join(_differs(column) for column in columns)
    return f"""
CREATE OR REPLACE FUNCTION public.questdb_capture_{table}_update() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
BEGIN
    IF {changed} THEN
        INSERT INTO public.cache_changes (table_name, op, rows)
        VALUES ('{table}', 'UPDATE', pg_catalog.jsonb_build_array({old}, {new}));
    ELSE
        INSERT INTO public.cache_changes (table_name, op, rows)
        VALUES ('{table}', 'UPDATE', pg_catalog.jsonb_build_array({new}));
    END IF;
    RETURN NULL;
END
$$
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, columns in captured.CAPTURED.items():
        schema_editor.execute(_function(table, columns))
    # What is left to do is 0005 undone: its pair of triggers becomes one trigger on this function, with no WHEN.
    previous.uninstall(apps, schema_editor)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in captured.CAPTURED:
        # 0004's function, which records the old and the new row; then 0005's pair of triggers over it.
        update = captured._function(table, "UPDATE", captured._operations(table)["UPDATE"])
        schema_editor.execute(update.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    previous.install(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("questdb", "0005_capture_unchanged_keys_once")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
