from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

from questdb.models import TimestampedModel

USERNAME_PATTERN = r"^[A-Za-z0-9_.]{3,30}$"


class Role(models.TextChoices):
    USER = "user", "User"
    GM = "gm", "Game master"
    ADMIN = "admin", "Admin"


def matching_lower(field: str, value: str) -> dict:
    """`lower(field) = lower(value)`: the form the case-insensitive unique indexes can answer.

    (Django's `__iexact` compiles to `UPPER(field) = UPPER(value)`, which no index here serves.)
    """
    return {f"{field}_lower": Lower(models.Value(value))}


class UserQuerySet(models.QuerySet):
    def with_username(self, username: str) -> "UserQuerySet":
        return self.alias(username_lower=Lower("username")).filter(**matching_lower("username", username))

    def with_email(self, email: str) -> "UserQuerySet":
        return self.alias(email_lower=Lower("email")).filter(**matching_lower("email", email))

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
        validators=[RegexValidator(USERNAME_PATTERN, "3-30 letters, digits, '_' or '.'.", code="invalid_username")],
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
        constraints = [
            models.UniqueConstraint(Lower("username"), name="users_username_ci_unique"),
            models.UniqueConstraint(Lower("email"), name="users_email_ci_unique"),
            models.CheckConstraint(condition=models.Q(username__regex=USERNAME_PATTERN), name="users_username_format"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="users_role_valid"),
        ]

    def __str__(self) -> str:
        return self.username
