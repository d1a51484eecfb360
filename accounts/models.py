from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, validate_email
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from questdb.models import TimestampedModel
from questdb.text import full_match

# better-auth's username plugin with its defaults (3-30 characters, its validator's character set);
# PostgreSQL reads it as the whole string, so Python matches it with full_match.
USERNAME_PATTERN = r"^[A-Za-z0-9_.]{3,30}$"
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_FOLD = str.maketrans(_ASCII_UPPER, _ASCII_UPPER.lower())


def default_role() -> str:
    return settings.USER_ROLES[0]


def split_roles(role: str | None) -> list[str]:
    """better-auth's admin plugin stores several roles as one comma-separated string."""
    return [part.strip() for part in (role or "").split(",") if part.strip()]


def ban_in_force(banned: bool | None, ban_expires, now) -> bool:
    """better-auth's rule: banned, and the ban has no end or ends after `now` (datetimes or timestamps)."""
    return banned is True and (ban_expires is None or ban_expires > now)


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
    # str.lower() of an ASCII string folds exactly the ASCII letters, and much faster than a translation table.
    return text.lower() if text.isascii() else text.translate(_ASCII_FOLD)


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

    def banned(self, now=None) -> "UserQuerySet":
        """Users under a ban in force now."""
        return self.filter(banned=True).filter(
            models.Q(ban_expires__isnull=True) | models.Q(ban_expires__gt=now or timezone.now())
        )

    def search(self, term: str) -> "UserQuerySet":
        term = term.strip()
        if not term:
            return self
        return self.filter(
            models.Q(username__icontains=term) | models.Q(email__icontains=term) | models.Q(name__icontains=term)
        )


class User(TimestampedModel):
    """A game user account: better-auth's `user` table with its username and admin plugins' columns.

    The identity app writes these rows; every column accepts whatever better-auth writes
    (text without a length limit, nullable where better-auth's field is optional).
    """

    # Null for users signed up without one (the username plugin allows it); they are not found by username.
    username = models.TextField(
        null=True,
        blank=True,
        validators=[
            RegexValidator(full_match(USERNAME_PATTERN), "3-30 letters, digits, '_' or '.'.", code="invalid_username")
        ],
    )
    display_username = models.TextField(null=True, blank=True)
    name = models.TextField(blank=True, default="", db_default="")
    email = models.TextField(validators=[validate_email])
    email_verified = models.BooleanField(default=False, db_default=False)
    image = models.TextField(null=True, blank=True, help_text="A URL; data URLs are allowed.")
    # Free text: one role or a comma-separated list (better-auth's admin plugin). See USER_ROLES.
    role = models.TextField(null=True, blank=True, default=default_role, db_default="user")
    banned = models.BooleanField(null=True, default=False, db_default=False)
    ban_reason = models.TextField(null=True, blank=True)
    ban_expires = models.DateTimeField(null=True, blank=True, help_text="Empty: the ban has no end.")

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
            models.UniqueConstraint(
                Lower("username"),
                name="users_username_ci_unique",
                violation_error_code="username_taken",
                violation_error_message="This username is taken (usernames are unique in any case).",
            ),
            models.UniqueConstraint(
                Lower("email"),
                name="users_email_ci_unique",
                violation_error_code="email_taken",
                violation_error_message="This email is taken by another user.",
            ),
            # Spelled out for Django's own validation (in SQL, NULL passes a CHECK anyway).
            models.CheckConstraint(
                condition=models.Q(username__isnull=True) | models.Q(username__regex=USERNAME_PATTERN),
                name="users_username_format",
                violation_error_message="Usernames are 3-30 letters, digits, '_' or '.'.",
            ),
        ]

    def __str__(self) -> str:
        return self.username or self.email

    def clean(self) -> None:
        # Staff may only give the roles questdb knows; a role the identity app wrote is kept as it is.
        if self.role != getattr(self, "_loaded_role", None):
            unknown = [role for role in split_roles(self.role) if role not in settings.USER_ROLES]
            if unknown or not split_roles(self.role):
                raise ValidationError(
                    {"role": f"Use one of {', '.join(settings.USER_ROLES)}, or several separated by commas."},
                    code="invalid_role",
                )

    def is_banned(self, now=None) -> bool:
        return ban_in_force(self.banned, self.ban_expires, now or timezone.now())


class SignInAccount(TimestampedModel):
    """A way a user signs in (better-auth's `account`: the credential password hash, OAuth tokens).

    Owned by the identity app. questdb migrates it so one `migrate` yields the whole shared
    schema; the API never exposes it and the admin shows only which providers a user has.
    """

    # db_constraint=False: the migration adds the constraint with ON DELETE CASCADE.
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="sign_in_accounts", db_index=False, db_constraint=False
    )
    account_id = models.TextField()
    provider_id = models.TextField()
    access_token = models.TextField(null=True, blank=True)
    refresh_token = models.TextField(null=True, blank=True)
    id_token = models.TextField(null=True, blank=True)
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True)
    scope = models.TextField(null=True, blank=True)
    password = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "account"
        ordering = ["created_at", "id"]
        verbose_name = "sign-in account"
        indexes = [models.Index(fields=["user"], name="account_user_id_idx")]

    def __str__(self) -> str:
        return f"{self.provider_id} sign-in"


class Verification(TimestampedModel):
    """A pending verification (email, password reset) of the identity app. Its value is a secret."""

    identifier = models.TextField()
    value = models.TextField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "verification"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["identifier"], name="verification_identifier_idx")]

    def __str__(self) -> str:
        return f"verification {self.id}"
