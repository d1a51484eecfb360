"""Cached user payloads and their invalidation. Keys: `user:{id}`, `user_username:{lower}`, `user_email:{lower}`."""

from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS
from rest_framework.renderers import JSONRenderer

from accounts import selectors
from accounts.api.serializers import UserSerializer
from accounts.models import User
from questdb.cache import Key, lookup_cache, pack, unpack
from questdb.errors import NotFound
from questdb.identifiers import parse_uuid


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
    return unpack(record)[1]


def user_payload(*, user_id) -> bytes:
    user_id = str(parse_uuid(user_id) or "")
    if not user_id:
        raise NotFound("No user with this id.", code="user_not_found")
    return _cached(Key("user", user_id), lambda: selectors.user_get(user_id=user_id))


def user_payload_by_username(*, username: str) -> bytes:
    return _cached(Key("user_username", username.lower()), lambda: selectors.user_get_by_username(username=username))


def user_payload_by_email(*, email: str) -> bytes:
    return _cached(Key("user_email", email.lower()), lambda: selectors.user_get_by_email(email=email))


def user_keys(*, user_id, usernames=(), emails=()) -> list[Key]:
    keys = [Key("user", str(user_id))]
    keys += [Key("user_username", name.lower()) for name in usernames if name]
    keys += [Key("user_email", email.lower()) for email in emails if email]
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
