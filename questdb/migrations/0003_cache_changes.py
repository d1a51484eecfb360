"""Change capture for the lookup cache: an outbox table filled by triggers, in the same transaction as the change.

Every committed INSERT, UPDATE, DELETE or TRUNCATE of a table a cached lookup depends on,
by any writer (questdb, the identity app, psql, a cascade), leaves one row in
`cache_changes`: the table, the operation and the identifying columns of the rows it
touched, old and new values alike (a rename must reach the keys under the old name).
Values are raw: the consumer (`manage.py invalidate_cache`) turns them into cache keys with
the apps' own key functions, so no key rule is written twice.

Statement-level triggers with transition tables: one outbox row per statement, however many
rows it touched. The functions run with their owner's rights (SECURITY DEFINER, a fixed
search_path): a writer needs no privilege on the outbox (the identity role has none).
PostgreSQL only; on SQLite (the embedded default, no Redis, the lookup cache
is off) there is nothing to capture and the migration does nothing.
"""

from django.db import migrations

# table -> the columns its cache keys are computed from.
CAPTURED = {
    "users": ("id", "username", "email"),
    "characters": ("id", "user_id"),
    "sessions": ("id", "user_id", "token"),
}
# Inserts reach a cached lookup only through a list (misses are never cached).
CAPTURES_INSERTS = {"characters"}

TABLE = """
CREATE TABLE cache_changes (
    id bigserial PRIMARY KEY,
    table_name text NOT NULL,
    op text NOT NULL,
    rows jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
) WITH (
    -- rows live for milliseconds: vacuum often, whatever the table's size
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000
)
"""


def _function(table: str, columns: tuple[str, ...]) -> str:
    cols = ", ".join(columns)
    return f"""
CREATE FUNCTION questdb_capture_{table}() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO cache_changes (table_name, op, rows) VALUES (TG_TABLE_NAME, TG_OP, '[]');
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO cache_changes (table_name, op, rows)
        SELECT TG_TABLE_NAME, TG_OP, jsonb_agg(r) FROM (SELECT {cols} FROM new_rows) r HAVING count(*) > 0;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO cache_changes (table_name, op, rows)
        SELECT TG_TABLE_NAME, TG_OP, jsonb_agg(r) FROM (SELECT {cols} FROM old_rows) r HAVING count(*) > 0;
    ELSE
        INSERT INTO cache_changes (table_name, op, rows)
        SELECT TG_TABLE_NAME, TG_OP, jsonb_agg(r)
        FROM (SELECT {cols} FROM old_rows UNION ALL SELECT {cols} FROM new_rows) r HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END
$$
"""


def _triggers(table: str) -> list[str]:
    # A trigger with transition tables may have only one event, hence one trigger per operation.
    function = f"questdb_capture_{table}()"
    statements = [
        f"CREATE TRIGGER {table}_capture_update AFTER UPDATE ON {table} "
        f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}",
        f"CREATE TRIGGER {table}_capture_delete AFTER DELETE ON {table} "
        f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}",
        f"CREATE TRIGGER {table}_capture_truncate AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {function}",
    ]
    if table in CAPTURES_INSERTS:
        statements.append(
            f"CREATE TRIGGER {table}_capture_insert AFTER INSERT ON {table} "
            f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}"
        )
    return statements


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(TABLE)
    for table, columns in CAPTURED.items():
        schema_editor.execute(_function(table, columns))
        for statement in _triggers(table):
            schema_editor.execute(statement)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in CAPTURED:
        for operation in ("insert", "update", "delete", "truncate"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_capture_{operation} ON {table}")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS questdb_capture_{table}()")
    schema_editor.execute("DROP TABLE IF EXISTS cache_changes")


class Migration(migrations.Migration):
    dependencies = [
        ("questdb", "0002_api_key_id_is_prefix"),
        ("accounts", "0001_initial"),
        ("characters", "0001_initial"),
        ("sessions_app", "0001_initial"),
    ]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
