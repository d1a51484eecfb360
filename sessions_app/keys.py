"""The cache keys a session lives under, and their invalidation: `session:{id}`, `session_token:{sha256(token)}`.

The raw token never appears in a key.
"""

import hashlib
from collections.abc import Iterable

from questdb.cache.keys import Key
from questdb.cache.store import lookup_cache
from sessions_app.models import Session


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def session_key(session_id) -> Key | None:
    return Key.for_id("session", session_id)


def session_token_key(token: str) -> Key:
    return Key("session_token", token_digest(token))


def session_keys(*, session_id, token: str) -> list[Key]:
    return [Key("session", str(session_id)), session_token_key(token)]


def invalidate_sessions(sessions: Iterable[Session]) -> None:
    lookup_cache.invalidate([key for s in sessions for key in session_keys(session_id=s.pk, token=s.token)])
