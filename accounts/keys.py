"""The cache keys a user lives under, and their invalidation.

Keys: `user:{id}`, `user_username:{ascii_fold(username)}`, `user_email:{ascii_fold(email)}`. The lookups
query with the same fold (accounts.models.ascii_fold), so a key is exactly what the database compared.
"""

from accounts.models import User, ascii_fold
from questdb.cache.keys import Key
from questdb.cache.store import lookup_cache


def user_id_key(user_id) -> Key | None:
    return Key.for_id("user", user_id)


def username_key(username: str) -> Key:
    return Key("user_username", ascii_fold(username))


def email_key(email: str) -> Key:
    return Key("user_email", ascii_fold(email))


def user_keys(*, user_id, usernames=(), emails=()) -> list[Key]:
    keys = [Key("user", str(user_id))]
    keys += [username_key(name) for name in usernames if name]
    keys += [email_key(email) for email in emails if email]
    return keys


def keys_of_user_rows(rows: list[dict]) -> list[Key]:
    """The keys of users captured by the change outbox: raw id, username and email, old and new alike."""
    return [
        key
        for row in rows
        for key in user_keys(user_id=row["id"], usernames=[row.get("username")], emails=[row.get("email")])
    ]


# What the invalidation consumer (questdb.cache.invalidation) calls for each captured change of a table.
CHANGE_KEYS = {"users": keys_of_user_rows}


def invalidate_user(user: User) -> None:
    """The user's keys, under the identity it was loaded with and the one it has now (a rename)."""
    loaded_username, loaded_email = getattr(user, "_loaded_identity", (None, None))
    lookup_cache.invalidate(
        user_keys(user_id=user.pk, usernames={user.username, loaded_username}, emails={user.email, loaded_email})
    )
