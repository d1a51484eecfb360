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
