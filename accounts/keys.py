"""The cache keys a user lives under, and their invalidation.

Keys: `user:{id}`, `user_username:{lower(username)}`, `user_email:{lower(email)}`.
"""

from accounts.models import User
from questdb.cache.keys import Key
from questdb.cache.store import lookup_cache


def user_id_key(user_id) -> Key | None:
    return Key.for_id("user", user_id)


def username_key(username: str) -> Key:
    return Key("user_username", username.lower())


def email_key(email: str) -> Key:
    return Key("user_email", email.lower())


def user_keys(*, user_id, usernames=(), emails=()) -> list[Key]:
    keys = [Key("user", str(user_id))]
    keys += [username_key(name) for name in usernames if name]
    keys += [email_key(email) for email in emails if email]
    return keys


def invalidate_user(user: User) -> None:
    """The user's keys, under the identity it was loaded with and the one it has now (a rename)."""
    loaded_username, loaded_email = getattr(user, "_loaded_identity", (None, None))
    lookup_cache.invalidate(
        user_keys(user_id=user.pk, usernames={user.username, loaded_username}, emails={user.email, loaded_email})
    )
