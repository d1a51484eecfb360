from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

from questdb.models import TimestampedModel
from questdb.text import full_match

USERNAME_PATTERN = r"^[A-Za-z0-9_.]{3,30}$"  # PostgreSQL's reading: the whole string (full_match in Python)
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_FOLD = str.maketrans(_ASCII_UPPER, _ASCII_UPPER.lower())


class Role(models.TextChoices):
    USER = "user", "User"
    GM = "gm", "Game master"
    ADMIN = "admin", "Admin"


def matching_lower(field: str, value: str) -> dict:
    """`lower(field) = lower(value)`: the form the case-insensitive unique indexes can answer.

    (Django's `__iexact` compiles to `UPPER(field) = UPPER(value)`, which no index here serves.)
    """
    return {f"{field}_lower": Lower(models.Value(value))}


def ascii_fold(text: str) -> str:
    """The case rule of user lookups: ASCII letters lower-cased, every other character kept as it is.

    The same function runs in the database (AsciiFold) and in Python (the cache keys), and neither
    depends on a locale, so every spelling that finds a user finds it under the key its
    invalidation deletes. Unicode case mapping is not used on purpose: PostgreSQL's lower()
    follows the server's locale and maps 'İ' (U+0130) to 'i' where Python's gives 'i̇'.
    Usernames are ASCII; an email's other characters match exactly.
    """
    return text.translate(_ASCII_FOLD)


class AsciiFold(models.Func):
    """`ascii_fold` in SQL: translate() with fixed ASCII tables, so indexes and queries read the same."""

    template = f"translate(%(expressions)s, '{_ASCII_UPPER}', '{_ASCII_UPPER.lower()}')"
    output_field = models.CharField()

    def as_sqlite(self, compiler, connection, **extra_context):
        # Development only: SQLite's built-in lower() folds ASCII letters and nothing else.
        return self.as_sql(compiler, connection, template="lower(%(expressions)s)", **extra_context)


class UserQuerySet(models.QuerySet):
    def with_username(self, username: str) -> "UserQuerySet":
        return self.alias(username_folded=AsciiFold("username")).filter(username_folded=ascii_fold(username))

    def with_email(self, email: str) -> "UserQuerySet":
        return self.alias(email_folded=AsciiFold("email")).filter(email_folded=ascii_fold(email))

    def search(self, term: str) -> "UserQuerySet":
        term = term.strip()
        if not term:
            return self
        return self.filter(
            models.Q(username__icontains=term) | models.Q(email__icontains=term) | models.Q(name__icontains=term)
        )


class User(TimestampedModel):
    """A game user account. Mirrors better-auth's `user` table plus its username plugin."""

    username = models.CharField(
        max_length=30,
        validators=[
            RegexValidator(full_match(USERNAME_PATTERN), "3-30 letters, digits, '_' or '.'.", code="invalid_username")
        ],
    )
    display_username = models.CharField(max_length=30, blank=True, default="", db_default="")
    name = models.CharField(max_length=255, blank=True, default="", db_default="")
    email = models.EmailField(max_length=254)
    email_verified = models.BooleanField(default=False, db_default=False)
    image = models.URLField(max_length=2048, null=True, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.USER, db_default=Role.USER)

    objects = UserQuerySet.as_manager()

    class Meta:
        db_table = "users"
        ordering = ["created_at", "id"]
        verbose_name = "game user"
        indexes = [
            # What the lookups by username and email compare (ascii_fold); the unique constraints stay on lower().
            models.Index(AsciiFold("username"), name="users_username_folded_idx"),
            models.Index(AsciiFold("email"), name="users_email_folded_idx"),
        ]
        constraints = [
            models.UniqueConstraint(Lower("username"), name="users_username_ci_unique"),
            models.UniqueConstraint(Lower("email"), name="users_email_ci_unique"),
            models.CheckConstraint(condition=models.Q(username__regex=USERNAME_PATTERN), name="users_username_format"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="users_role_valid"),
        ]

    def __str__(self) -> str:
        return self.username
