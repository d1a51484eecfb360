from django.db import transaction

from accounts.models import User


@transaction.atomic
def user_save(*, user: User) -> User:
    """Validate and save a user edited by staff (the identity app writes users itself)."""
    user.full_clean()
    user.save()
    return user


@transaction.atomic
def user_delete(*, user: User) -> None:
    """Delete a user with its characters and sessions (cascade)."""
    user.delete()


# The ban columns of better-auth's admin plugin (banned, ban_reason, ban_expires).
BAN_FIELDS = ("banned", "ban_reason", "ban_expires")


@transaction.atomic
def user_ban(*, user: User, reason: str, expires=None) -> User:
    """Ban a user until `expires` (None: with no end). The caller signs them out (sessions_app)."""
    user.banned, user.ban_reason, user.ban_expires = True, reason, expires
    user.save(update_fields=BAN_FIELDS)
    return user


@transaction.atomic
def user_unban(*, user: User) -> User:
    user.banned, user.ban_reason, user.ban_expires = False, None, None
    user.save(update_fields=BAN_FIELDS)
    return user
