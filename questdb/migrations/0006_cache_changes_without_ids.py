"""Cheaper change capture for concurrent writers: the outbox has no id column, so no sequence and no index.

Every captured write drew the next id from one sequence and inserted it at the right edge of one
btree: with several writers at once, both are a page every trigger locks in turn. Measured on two
cores with four pgbench clients updating users, the id and its index were most of the trigger's
cost (+12.5 µs per update against +0 to -2 µs without them, on 214-225 µs per update).

The consumer names a row by its address and inserting transaction, (ctid, xmin), instead: a row's
ctid holds while the row lives and only the leading consumer deletes rows; xmin tells a row apart from
a later one at a reused address (if something else deleted a row and VACUUM gave its place away).
A batch is no longer read in id order; the consumer relies on no order (ids commit out of order anyway).

Run the new consumer with this migration: the previous one's statement names the id column, fails and
retries, and its heartbeat stops (lookups stop trusting the cache) until it is replaced. PostgreSQL only.
"""

from django.db import migrations


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE cache_changes DROP COLUMN id")  # its primary key and sequence with it


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE cache_changes ADD COLUMN id bigserial PRIMARY KEY")
    schema_editor.execute("ALTER SEQUENCE cache_changes_id_seq SET UNLOGGED")


class Migration(migrations.Migration):
    dependencies = [("questdb", "0005_capture_unchanged_keys_once")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
