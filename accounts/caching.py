"""Cached user payloads and their invalidation. Keys: `user:{id}`, `user_username:{lower}`, `user_email:{lower}`."""

from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS
from rest_framework.renderers import JSONRenderer

from accounts import selectors
from accounts.api.serializers import UserSerializer
from accounts.models import User
from questdb.cache import Key, lookup_cache, pack, unpack
from questdb.cached_reads import CachedRead, api_path
from questdb.errors import NotFound


def render_user(user: User) -> bytes:
    return JSONRenderer().render(UserSerializer(user).data)


def _cached(key: Key, load: Callable[[], User]) -> bytes:
    def fill() -> bytes | None:
        try:
            return pack({}, render_user(load()))
        except NotFound:
            return None  # misses are not cached: a user the identity app inserts is visible at once

    record = lookup_cache.get_or_fill(key, fill)
    if record is None:
        raise NotFound("No such user.", code="user_not_found")
    return serve_user(record)[0]


def serve_user(record: bytes) -> tuple[bytes, dict]:
    return unpack(record)[1], {}


def user_id_key(user_id) -> Key | None:
    return Key.for_id("user", user_id)


def username_key(username: str) -> Key:
    return Key("user_username", username.lower())


def email_key(email: str) -> Key:
    return Key("user_email", email.lower())


def user_payload(*, user_id) -> bytes:
    key = user_id_key(user_id)
    if key is None:
        raise NotFound("No user with this id.", code="user_not_found")
    return _cached(key, lambda: selectors.user_get(user_id=key.ident))


def user_payload_by_username(*, username: str) -> bytes:
    return _cached(username_key(username), lambda: selectors.user_get_by_username(username=username))


def user_payload_by_email(*, email: str) -> bytes:
    return _cached(email_key(email), lambda: selectors.user_get_by_email(email=email))


CACHED_READS = [
    CachedRead(
        "user-detail", "GET", api_path("users/(?P<value>[^/]+)/"), lambda r, m: user_id_key(m["value"]), serve_user
    ),
    CachedRead(
        "user-by-username",
        "GET",
        api_path("users/by-username/(?P<value>[^/]+)/"),
        lambda r, m: username_key(m["value"]),
        serve_user,
    ),
    CachedRead(
        "user-by-email",
        "GET",
        api_path("users/by-email/(?P<value>[^/]+)/"),
        lambda r, m: email_key(m["value"]),
        serve_user,
    ),
]


def user_keys(*, user_id, usernames=(), emails=()) -> list[Key]:
    keys = [Key("user", str(user_id))]
    keys += [username_key(name) for name in usernames if name]
    keys += [email_key(email) for email in emails if email]
    return keys


def invalidate_user(user: User) -> None:
    from sessions_app.caching import session_keys

    loaded_username, loaded_email = getattr(user, "_loaded_identity", (None, None))
    keys = user_keys(user_id=user.pk, usernames={user.username, loaded_username}, emails={user.email, loaded_email})
    # Session payloads embed the user, so they go stale with it.
    # From the primary: a replica may not have the sessions this write must reach yet.
    for session_id, token in user.sessions.using(DEFAULT_DB_ALIAS).values_list("id", "token"):
        keys += session_keys(session_id=session_id, token=token)
    lookup_cache.invalidate(keys)
