from django.db import models
from django.utils import timezone

from questdb.models import TimestampedModel


class SessionQuerySet(models.QuerySet):
    def live(self, now=None) -> "SessionQuerySet":
        return self.filter(expires_at__gt=now or timezone.now())

    def expired(self, now=None) -> "SessionQuerySet":
        return self.filter(expires_at__lte=now or timezone.now())


class Session(TimestampedModel):
    """A login session: better-auth's `session` table with its admin plugin's column. The identity app inserts rows."""

    # The identity app looks sessions up by this bearer secret; the API never returns it.
    token = models.CharField(max_length=255, unique=True)
    # db_constraint=False: the migration adds the constraint with ON DELETE CASCADE.
    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="sessions", db_constraint=False)
    expires_at = models.DateTimeField()
    ip_address = models.TextField(null=True, blank=True)
    user_agent = models.TextField(null=True, blank=True)
    # The staff user acting as this session's user (better-auth's admin plugin, impersonateUser).
    impersonated_by = models.UUIDField(null=True, blank=True)

    objects = SessionQuerySet.as_manager()

    class Meta:
        db_table = "sessions"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["expires_at"], name="sessions_expires_at_idx")]

    def __str__(self) -> str:
        # Staff read this as a page title: whose session, and which one.
        owner = self.user.username if "user" in self._state.fields_cache else self.user_id
        return f"{owner}'s session {str(self.id)[:8]}"

    def is_expired(self, now=None) -> bool:
        return self.expires_at <= (now or timezone.now())
