"""Migration operations Django 5.2 lacks."""

from django.db import migrations


def cascading_foreign_key(*, table: str, column: str, target: str) -> migrations.RunPython:
    """A foreign key that cascades in the database itself (Django cascades only in Python).

    The identity app deletes users with plain SQL, and their characters and sessions
    must go with them. The model field says `db_constraint=False`; this is its constraint.
    """
    name = f"{table}_{column}_fk"

    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
                f"REFERENCES {target} (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED"
            )

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")

    return migrations.RunPython(forwards, backwards, elidable=False)
