"""Cached user payloads (the response bodies of the user lookups) and the hit path's routes for them."""

from collections.abc import Callable, Sequence

from rest_framework.renderers import JSONRenderer

from accounts import selectors
from accounts.api.serializers import UserSerializer
from accounts.keys import email_key, user_id_key, username_key
from accounts.models import User
from questdb.cache.batch import LookupResult, cached_lookups
from questdb.cache.hit_path import CachedBatchRead, CachedRead, api_path
from questdb.cache.keys import Key
from questdb.cache.records import Payload, pack, unpack
from questdb.cache.store import lookup_cache
from questdb.errors import NotFound


def render_user(user: User) -> bytes:
    return JSONRenderer().render(UserSerializer(user).data)


def user_record(user: User) -> bytes:
    return pack({}, render_user(user))


def _cached(key: Key, load: Callable[[], User]) -> Payload:
    def fill() -> bytes | None:
        try:
            return user_record(load())
        except NotFound:
            return None  # misses are not cached: a user the identity app inserts is visible at once

    record = lookup_cache.get_or_fill(key, fill)
    if record is None:
        raise selectors.user_not_found()
    return serve_user(record)


def serve_user(record: bytes) -> Payload:
    return Payload(unpack(record)[1], {})


def user_payload(*, user_id) -> Payload:
    key = user_id_key(user_id)
    if key is None:
        raise selectors.user_not_found()
    return _cached(key, lambda: selectors.user_get(user_id=key.ident))


def _user_records(keys: list[Key]) -> dict[Key, bytes]:
    users = selectors.user_get_many(user_ids=[key.ident for key in keys])
    return {user_id_key(user.pk): user_record(user) for user in users}


def user_payloads(*, user_ids: Sequence) -> list[LookupResult]:
    """`user_payload` for many ids at once: one Redis round trip for the hits, one query for the misses.

    One result per id, in order: the same body as the single lookup, or its 404.
    """
    return cached_lookups(
        user_ids, key_for=user_id_key, load_many=_user_records, serve=serve_user, not_found=selectors.user_not_found
    )


def user_payload_by_username(*, username: str) -> Payload:
    return _cached(username_key(username), lambda: selectors.user_get_by_username(username=username))


def user_payload_by_email(*, email: str) -> Payload:
    return _cached(email_key(email), lambda: selectors.user_get_by_email(email=email))


CACHED_READS = [
    CachedRead(
        "user-detail",
        "GET",
        api_path("users/(?P<value>[^/]+)/"),
        lambda r, m: user_id_key(m["value"]),
        serve_user,
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
    CachedBatchRead("user-batch", api_path("users/batch/"), user_id_key, serve_user),
]
