"""Cached session payloads. Keys: `session:{id}` and `session_token:{sha256(token)}`.

The raw token never appears in a key. Every record carries the expiry, checked
on each hit, so a cached session is never served after it expires.
"""

import hashlib
from collections.abc import Callable, Iterable

from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from questdb.cache import Key, lookup_cache, pack, unpack
from questdb.errors import Gone, NotFound
from questdb.identifiers import parse_uuid
from sessions_app.models import Session

EXPIRED = "session_expired"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def session_keys(*, session_id, token: str) -> list[Key]:
    return [Key("session", str(session_id)), Key("session_token", token_digest(token))]


def invalidate_sessions(sessions: Iterable[Session]) -> None:
    lookup_cache.invalidate([key for s in sessions for key in session_keys(session_id=s.pk, token=s.token)])


def _cached(key: Key, load: Callable[[], Session]) -> bytes:
    from sessions_app.api.serializers import SessionSerializer

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
        raise refusal[0] if refusal else NotFound("No such session.", code="session_not_found")
    meta, body = unpack(record)
    if meta["expires_at"] <= timezone.now().timestamp():
        raise Gone("The session has expired.", code=EXPIRED)
    return body


def session_payload(*, session_id) -> bytes:
    from sessions_app.selectors import session_get

    session_uuid = parse_uuid(session_id)
    if session_uuid is None:
        raise NotFound("No such session.", code="session_not_found")
    return _cached(Key("session", str(session_uuid)), lambda: session_get(session_id=session_uuid))


def session_payload_by_token(*, token: str) -> bytes:
    from sessions_app.selectors import session_get_by_token

    return _cached(Key("session_token", token_digest(token)), lambda: session_get_by_token(token=token))
