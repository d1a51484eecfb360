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


def keys_of_session_rows(rows: list[dict]) -> list[Key]:
    """The keys of sessions captured by the change outbox (raw id and token; the token only ever becomes a digest)."""
    return [key for row in rows for key in session_keys(session_id=row["id"], token=row["token"])]


# What the invalidation consumer (questdb.cache.invalidation) calls for each captured change of a table.
CHANGE_KEYS = {"sessions": keys_of_session_rows}
# Session payloads embed their user: a changed user's sessions go stale with it. The consumer reads them in the
# statement that reads the batch (one round trip, one snapshot, on the primary): {changed table: (embedding
# table, its column referencing the changed row's id, that column's type, the columns its CHANGE_KEYS need)}.
# A deleted user's sessions are gone with the cascade, and each of those deletes is captured on its own.
CHANGE_EMBEDS = {"users": ("sessions", "user_id", "uuid", ("id", "token"))}


def invalidate_sessions(sessions: Iterable[Session]) -> None:
    lookup_cache.invalidate([key for s in sessions for key in session_keys(session_id=s.pk, token=s.token)])
