"""The cache keys a session lives under, and their invalidation: `session:{id}`, `session_token:{sha256(token)}`.

The raw token never appears in a key.
"""

import hashlib
from collections.abc import Iterable

from django.db import DEFAULT_DB_ALIAS

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


def keys_of_session_rows(rows: list[dict]) -> list[Key]:
    """The keys of sessions captured by the change outbox (raw id and token; the token only ever becomes a digest)."""
    return [key for row in rows for key in session_keys(session_id=row["id"], token=row["token"])]


def keys_of_sessions_of_user_rows(rows: list[dict]) -> list[Key]:
    """Session payloads embed their user: a changed user's sessions go stale with it.

    From the primary: a replica may not have the sessions yet. A deleted user's sessions
    are gone with the cascade, and each of those deletes is captured on its own.
    """
    user_ids = {row["id"] for row in rows}
    sessions = Session.objects.using(DEFAULT_DB_ALIAS).filter(user_id__in=user_ids).values_list("id", "token")
    return [key for session_id, token in sessions for key in session_keys(session_id=session_id, token=token)]


# What the invalidation consumer (questdb.cache.invalidation) calls for each captured change of a table.
CHANGE_KEYS = {"sessions": keys_of_session_rows, "users": keys_of_sessions_of_user_rows}


def invalidate_sessions(sessions: Iterable[Session]) -> None:
    lookup_cache.invalidate([key for s in sessions for key in session_keys(session_id=s.pk, token=s.token)])
