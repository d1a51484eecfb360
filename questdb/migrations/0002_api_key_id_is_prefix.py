from django.db import migrations


class Migration(migrations.Migration):
    """API keys are addressed by their public prefix, not "<prefix>.<hash>" (admin URLs, logs)."""

    dependencies = [
        ("questdb", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            "UPDATE api_keys SET id = prefix WHERE id <> prefix",
            reverse_sql="UPDATE api_keys SET id = prefix || '.' || hashed_key WHERE id = prefix",
        ),
    ]
