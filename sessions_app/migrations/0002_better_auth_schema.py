"""better-auth's admin plugin column, and addresses of any length."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sessions_app', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='session',
            name='impersonated_by',
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='session',
            name='ip_address',
            field=models.TextField(blank=True, null=True),
        ),
    ]
