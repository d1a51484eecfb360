"""Cheaper change capture for the common update: one row recorded, not two, when no key column changed.

0004 records an UPDATE's old and new key columns, so that a rename reaches the old keys. Most updates change
no key column (a name, money, a session's expiry): then the old row's keys are the new row's, and recording
both only doubled the trigger's jsonb work and the consumer's. Each captured table now has two UPDATE
triggers, told apart by a WHEN condition on its key columns, so exactly one of them fires for a row:
- `{table}_capture_update`: the key columns are the same: records the new row;
- `{table}_capture_update_keys`: a key column changed: records the old and the new row (0004's function).

The WHEN conditions compare text columns under the "C" collation (bytes), so that a column moved to a
non-deterministic collation someday cannot make two different keys compare equal. They are parsed here,
once, with their operators resolved at creation: a writer's search_path cannot redirect them (as in 0004).
PostgreSQL only, as 0003 and 0004.
"""

from importlib import import_module

from django.db import migrations

previous = import_module("questdb.migrations.0004_cache_changes_unlogged_row_triggers")
TEXT_COLUMNS = {"username", "email", "token"}  # the captured key columns of type text


def _changed(table: str) -> str:
    def column(row: str, name: str) -> str:
        return f'{row}.{name} COLLATE "C"' if name in TEXT_COLUMNS else f"{row}.{name}"

    return " OR ".join(
        f"{column('OLD', name)} IS DISTINCT FROM {column('NEW', name)}" for name in previous.CAPTURED[table]
    )


def _new_row_function(table: str, columns: tuple[str, ...]) -> str:
    # As 0004's functions: SECURITY DEFINER, every name schema-qualified, no operator.
    return f"""
CREATE FUNCTION public.questdb_capture_{table}_update_new() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
BEGIN
    INSERT INTO public.cache_changes (table_name, op, rows)
    VALUES ('{table}', 'UPDATE', pg_catalog.jsonb_build_array({previous._record("NEW", columns)}));
    RETURN NULL;
END
$$
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, columns in previous.CAPTURED.items():
        schema_editor.execute(_new_row_function(table, columns))
        schema_editor.execute(f"DROP TRIGGER {table}_capture_update ON {table}")
        schema_editor.execute(
            f"CREATE TRIGGER {table}_capture_update AFTER UPDATE ON {table} FOR EACH ROW "
            f"WHEN (NOT ({_changed(table)})) EXECUTE FUNCTION public.questdb_capture_{table}_update_new()"
        )
        schema_editor.execute(
            f"CREATE TRIGGER {table}_capture_update_keys AFTER UPDATE ON {table} FOR EACH ROW "
            f"WHEN ({_changed(table)}) EXECUTE FUNCTION public.questdb_capture_{table}_update()"
        )


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in previous.CAPTURED:
        schema_editor.execute(f"DROP TRIGGER {table}_capture_update_keys ON {table}")
        schema_editor.execute(f"DROP TRIGGER {table}_capture_update ON {table}")
        schema_editor.execute(f"DROP FUNCTION public.questdb_capture_{table}_update_new()")
        schema_editor.execute(
            f"CREATE TRIGGER {table}_capture_update AFTER UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION public.questdb_capture_{table}_update()"
        )


class Migration(migrations.Migration):
    dependencies = [("questdb", "0004_cache_changes_unlogged_row_triggers")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
