"""The whole schema better-auth (core, username and admin plugins) writes: it validates it at start-up."""

import accounts.models
import django.core.validators
import django.db.models.deletion
import django.db.models.functions.datetime
import django.utils.timezone
import questdb.models
import uuid
from django.db import migrations, models

from questdb.db.migration_operations import cascading_foreign_key


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='SignInAccount',
            fields=[
                ('id', models.UUIDField(db_default=questdb.models.RandomUUID(), default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('created_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now, editable=False)),
                ('updated_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now, editable=False)),
                ('account_id', models.TextField()),
                ('provider_id', models.TextField()),
                ('access_token', models.TextField(blank=True, null=True)),
                ('refresh_token', models.TextField(blank=True, null=True)),
                ('id_token', models.TextField(blank=True, null=True)),
                ('access_token_expires_at', models.DateTimeField(blank=True, null=True)),
                ('refresh_token_expires_at', models.DateTimeField(blank=True, null=True)),
                ('scope', models.TextField(blank=True, null=True)),
                ('password', models.TextField(blank=True, null=True)),
            ],
            options={
                'verbose_name': 'sign-in account',
                'db_table': 'account',
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.CreateModel(
            name='Verification',
            fields=[
                ('id', models.UUIDField(db_default=questdb.models.RandomUUID(), default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('created_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now, editable=False)),
                ('updated_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now, editable=False)),
                ('identifier', models.TextField()),
                ('value', models.TextField()),
                ('expires_at', models.DateTimeField()),
            ],
            options={
                'db_table': 'verification',
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.RemoveConstraint(
            model_name='user',
            name='users_role_valid',
        ),
        migrations.RemoveConstraint(
            model_name='user',
            name='users_username_format',
        ),
        migrations.AddField(
            model_name='user',
            name='ban_expires',
            field=models.DateTimeField(blank=True, help_text='Empty: the ban has no end.', null=True),
        ),
        migrations.AddField(
            model_name='user',
            name='ban_reason',
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='user',
            name='banned',
            field=models.BooleanField(db_default=False, default=False, null=True),
        ),
        migrations.AlterField(
            model_name='user',
            name='display_username',
            field=models.TextField(blank=True, null=True),
        ),
        # An unset display name is NULL, as better-auth leaves it.
        migrations.RunSQL(
            "UPDATE users SET display_username = NULL WHERE display_username = ''",
            "UPDATE users SET display_username = '' WHERE display_username IS NULL",
        ),
        migrations.AlterField(
            model_name='user',
            name='email',
            field=models.TextField(validators=[django.core.validators.EmailValidator()]),
        ),
        migrations.AlterField(
            model_name='user',
            name='image',
            field=models.TextField(blank=True, help_text='A URL; data URLs are allowed.', null=True),
        ),
        migrations.AlterField(
            model_name='user',
            name='name',
            field=models.TextField(blank=True, db_default='', default=''),
        ),
        migrations.AlterField(
            model_name='user',
            name='role',
            field=models.TextField(blank=True, db_default='user', default=accounts.models.default_role, null=True),
        ),
        migrations.AlterField(
            model_name='user',
            name='username',
            field=models.TextField(blank=True, null=True, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9_.]{3,30}$', "3-30 letters, digits, '_' or '.'.", code='invalid_username')]),
        ),
        migrations.AddField(
            model_name='signinaccount',
            name='user',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='sign_in_accounts', to='accounts.user'),
        ),
        migrations.AddIndex(
            model_name='verification',
            index=models.Index(fields=['identifier'], name='verification_identifier_idx'),
        ),
        migrations.AddIndex(
            model_name='signinaccount',
            index=models.Index(fields=['user'], name='account_user_id_idx'),
        ),
        migrations.AddConstraint(
            model_name='user',
            constraint=models.CheckConstraint(condition=models.Q(('username__isnull', True), ('username__regex', '^[A-Za-z0-9_.]{3,30}$'), _connector='OR'), name='users_username_format'),
        ),
        cascading_foreign_key(table="account", column="user_id", target="users"),
    ]
