"""Cached session payloads (the bodies of the session lookups) and the hit path's routes for them.

Every record carries the expiry, checked on each hit, so a cached session is never
served after it expires.
"""

import json
from collections.abc import Callable

from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from questdb.cache.hit_path import CachedRead, api_path
from questdb.cache.keys import Key
from questdb.cache.records import Payload, pack, unpack
from questdb.cache.store import lookup_cache
from questdb.errors import Gone, InvalidInput, NotFound
from sessions_app.api.serializers import SessionSerializer
from sessions_app.keys import session_key, session_token_key
from sessions_app.models import Session
from sessions_app.selectors import session_expired, session_get, session_get_by_token, session_not_found


def _cached(key: Key, load: Callable[[], Session]) -> Payload:
    refusal: list[Exception] = []

    def fill() -> bytes | None:
        try:
            session = load()
        except (NotFound, Gone) as error:
            refusal.append(error)  # unknown and expired sessions are never cached
            return None
        body = JSONRenderer().render(SessionSerializer(session).data)
        return pack({"expires_at": session.expires_at.timestamp()}, body)

    record = lookup_cache.get_or_fill(key, fill)
    if record is None:
        raise refusal[0] if refusal else session_not_found()
    return serve_session(record)


def serve_session(record: bytes) -> Payload:
    """A cached session's body; Gone once it has expired, whatever the cache TTL."""
    meta, body = unpack(record)
    if meta["expires_at"] <= timezone.now().timestamp():
        raise session_expired()
    return Payload(body, {})


def _token_key(request, match) -> Key | None:
    if request.content_type != "application/json":
        return None
    try:
        token = json.loads(request.body).get("token")
    except (ValueError, AttributeError):
        return None
    return session_token_key(token) if isinstance(token, str) and 0 < len(token) <= 255 else None


def session_payload(*, session_id) -> Payload:
    key = session_key(session_id)
    if key is None:
        raise session_not_found()
    return _cached(key, lambda: session_get(session_id=key.ident))


def session_payload_by_token(*, token) -> Payload:
    if not isinstance(token, str) or not token or len(token) > 255:
        raise InvalidInput("token must be a non-empty string.", code="invalid_token", field="token")
    return _cached(session_token_key(token), lambda: session_get_by_token(token=token))


CACHED_READS = [
    CachedRead(
        "session-detail",
        "GET",
        api_path("sessions/(?P<value>[^/]+)/"),
        lambda r, m: session_key(m["value"]),
        serve_session,
    ),
    CachedRead("session-lookup", "POST", api_path("sessions/lookup/"), _token_key, serve_session),
]
