"""Cached session payloads (the bodies of the session lookups) and the hit path's routes for them.

Every record carries the session's expiry and its user's ban, checked on each hit, so a
cached session is never served after it expires or while its user is banned.
"""

from collections.abc import Callable

from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from questdb.cache.hit_path import CachedRead, api_path
from questdb.cache.keys import Key
from questdb.cache.records import Payload, pack, unpack
from questdb.cache.store import lookup_cache
from questdb.errors import Forbidden, Gone, InvalidInput, NotFound
from sessions_app.api.serializers import SessionSerializer
from sessions_app.keys import session_key, session_token_key
from sessions_app.models import Session
from sessions_app.selectors import (
    ensure_live,
    ensure_usable,
    session_find,
    session_find_by_token,
    session_not_found,
)


def _cached(key: Key, load: Callable[[], Session | None]) -> Payload:
    refusal: list[Exception] = []

    def fill() -> bytes | None:
        session = load()
        try:
            ensure_live(session)
        except (NotFound, Gone) as error:
            refusal.append(error)  # unknown and expired sessions are never cached
            return None
        except Forbidden:
            pass  # cached all the same: serve_session refuses it while the ban lasts and serves it once it ends
        body = JSONRenderer().render(SessionSerializer(session).data)
        return pack(record_meta(session), body)

    record = lookup_cache.get_or_fill(key, fill)
    if record is None:
        raise refusal[0] if refusal else session_not_found()
    return serve_session(record)


def record_meta(session: Session) -> dict:
    """What a hit needs to apply the session rule at serve time: the expiry and the user's ban."""
    user = session.user
    ban_expires = user.ban_expires.timestamp() if user.ban_expires else None
    return {"expires_at": session.expires_at.timestamp(), "banned": user.banned is True, "ban_expires": ban_expires}


def serve_session(record: bytes) -> Payload:
    """A cached session's body; Gone once it has expired, Forbidden while its user is banned, whatever the TTL."""
    meta, body = unpack(record)
    ensure_usable(
        expires_at=meta["expires_at"],
        banned=meta["banned"],
        ban_expires=meta["ban_expires"],
        now=timezone.now().timestamp(),
    )
    return Payload(body, {})


def _token_key(request, match) -> Key | None:
    """The key of the body's token; None (Django answers) for anything the API's parser would not accept."""
    document = request.json()
    token = document.get("token") if isinstance(document, dict) else None
    return session_token_key(token) if isinstance(token, str) and 0 < len(token) <= 255 else None


def session_payload(*, session_id) -> Payload:
    key = session_key(session_id)
    if key is None:
        raise session_not_found()
    return _cached(key, lambda: session_find(session_id=key.ident))


def session_payload_by_token(*, token) -> Payload:
    if not isinstance(token, str) or not token or len(token) > 255:
        raise InvalidInput("token must be a non-empty string.", code="invalid_token", field="token")
    return _cached(session_token_key(token), lambda: session_find_by_token(token=token))


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
