from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import matching_lower
from characters import shapes
from questdb.models import TimestampedModel
from questdb.text import full_match

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{2,15}$"  # PostgreSQL's reading: the whole string (full_match in Python)
NAME_RULE = "3-16 letters, digits or '_', not starting with a digit."


class CharacterQuerySet(models.QuerySet):
    def owned_by(self, user_id) -> "CharacterQuerySet":
        return self.filter(user_id=user_id)

    def pending_deletion(self) -> "CharacterQuerySet":
        return self.filter(deleted_at__isnull=False)

    def live(self) -> "CharacterQuerySet":
        return self.filter(deleted_at__isnull=True)

    def due_for_purge(self, now=None) -> "CharacterQuerySet":
        return self.filter(purge_at__lte=now or timezone.now())

    def existing(self, now=None) -> "CharacterQuerySet":
        """Live characters and those pending deletion whose purge time is still ahead."""
        return self.exclude(purge_at__lte=now or timezone.now())

    def named(self, name: str) -> "CharacterQuerySet":
        """Case-insensitive, answered by the characters_name_ci_unique index."""
        return self.alias(name_lower=Lower("name")).filter(**matching_lower("name", name))


class Character(TimestampedModel):
    # Indexed by characters_user_created_idx (it leads with user_id). db_constraint=False:
    # the migration adds the constraint with ON DELETE CASCADE.
    user = models.ForeignKey(
        "accounts.User", on_delete=models.CASCADE, related_name="characters", db_index=False, db_constraint=False
    )
    name = models.CharField(
        max_length=16, validators=[RegexValidator(full_match(NAME_PATTERN), NAME_RULE, code="invalid_name")]
    )
    money = models.BigIntegerField(default=0, db_default=0)
    stats = models.JSONField(default=shapes.default_stats)
    inventory = models.JSONField(default=shapes.default_inventory, blank=True)
    skills = models.JSONField(default=shapes.default_skills, blank=True)
    looks = models.JSONField(default=shapes.default_looks)
    position = models.JSONField(default=shapes.default_position)
    is_active = models.BooleanField(default=True, db_default=True)
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)
    purge_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The owner's character slot, 0..MAX_CHARACTERS_PER_USER-1, unique per owner: the index holds the
    # per-user limit under concurrent creates. A row keeps its slot until it is deleted (pending deletion
    # included); null only for rows written around characters.services, which then serializes that owner.
    slot = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)

    objects = CharacterQuerySet.as_manager()

    class Meta:
        db_table = "characters"
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="characters_user_created_idx"),
            models.Index(
                fields=["purge_at"], name="characters_purge_at_idx", condition=models.Q(purge_at__isnull=False)
            ),
        ]
        constraints = [
            # Pending-deletion rows still hold their name until they are purged.
            models.UniqueConstraint(
                Lower("name"),
                name="characters_name_ci_unique",
                violation_error_code="name_taken",
                violation_error_message="This name is taken (names are unique in any case).",
            ),
            models.UniqueConstraint(fields=["user", "slot"], name="characters_user_slot_unique"),
            models.CheckConstraint(
                condition=models.Q(money__gte=0),
                name="characters_money_non_negative",
                violation_error_message="Money cannot be negative.",
            ),
            models.CheckConstraint(
                condition=models.Q(name__regex=NAME_PATTERN),
                name="characters_name_format",
                violation_error_message=f"Names are {NAME_RULE}",
            ),
            models.CheckConstraint(
                condition=models.Q(deleted_at__isnull=True, purge_at__isnull=True)
                | models.Q(deleted_at__isnull=False, purge_at__isnull=False),
                name="characters_deletion_consistent",
                violation_error_message="A deletion time and a purge time are set together or not at all.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_pending_deletion(self) -> bool:
        return self.deleted_at is not None

    def is_past_purge(self, now=None) -> bool:
        """Past its purge time a character is gone, even before `purge_characters` deletes the row."""
        return self.purge_at is not None and self.purge_at <= (now or timezone.now())

    def seconds_until_purge(self, now=None) -> int | None:
        if self.purge_at is None:
            return None
        return max(0, int((self.purge_at - (now or timezone.now())).total_seconds()))

    def etag(self) -> str:
        return f'"{self.updated_at.timestamp():.6f}"'
