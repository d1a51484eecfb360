"""Numbered character slots per owner, unique per owner: the per-user limit without locking the owner.

Existing characters get slots 0, 1, ... per owner, oldest first (the order the API lists them).
"""

from django.db import migrations, models

NUMBER_SLOTS = """
UPDATE characters SET slot = numbered.position - 1
FROM (SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY created_at, id) AS position FROM characters)
     AS numbered
WHERE characters.id = numbered.id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("characters", "0002_whole_string_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="character",
            name="slot",
            field=models.PositiveSmallIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.RunSQL(NUMBER_SLOTS, migrations.RunSQL.noop, elidable=False),
        migrations.AddConstraint(
            model_name="character",
            constraint=models.UniqueConstraint(fields=("user", "slot"), name="characters_user_slot_unique"),
        ),
    ]
