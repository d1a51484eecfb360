"""Columns every questdb table shares: a UUID v4 primary key and timestamps.

Rows are also inserted by other systems (the identity app writes users and
sessions directly), so each default exists in the database, not only in Python.
"""

import uuid

from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager


class RandomUUID(models.Func):
    """A database-side UUID v4 default (`gen_random_uuid()` on PostgreSQL)."""

    template = "gen_random_uuid()"
    output_field = models.UUIDField()

    def as_sqlite(self, compiler, connection, **extra_context):
        # Development only: 32 random hex digits, the format Django stores UUIDs in on SQLite.
        return "lower(hex(randomblob(16)))", []


class TimestampedModel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, db_default=RandomUUID(), editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    updated_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        # Python-side convenience only; writers outside Django set updated_at themselves.
        if not self._state.adding:
            self.updated_at = timezone.now()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "updated_at"}
        super().save(*args, **kwargs)


class Scope(models.TextChoices):
    READ = "read", "Read (safe methods only)"
    WRITE = "write", "Write (everything)"


class ServiceAPIKeyManager(BaseAPIKeyManager):
    def assign_key(self, obj: "ServiceAPIKey") -> str:
        key = super().assign_key(obj)
        # The library's primary key is "<prefix>.<hash>"; the hash would then appear in admin URLs
        # and request logs. The prefix alone is unique and public (it starts the key and is listed).
        obj.id = obj.prefix
        return key


class ServiceAPIKey(AbstractAPIKey):
    """A calling service's key. `name` names the service; the key itself is stored hashed.

    Its primary key is the key's public prefix (see ServiceAPIKeyManager), never the hash.
    """

    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.READ)

    objects = ServiceAPIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        db_table = "api_keys"
        verbose_name = "service API key"
