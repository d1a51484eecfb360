from django.utils import timezone

from accounts.models import ban_in_force
from questdb.errors import Forbidden, Gone, NotFound
from questdb.identifiers import parse_uuid
from sessions_app.models import Session

SESSION_EXPIRED = "session_expired"
USER_BANNED = "user_banned"


def session_not_found() -> NotFound:
    return NotFound("No such session.", code="session_not_found")


def session_expired() -> Gone:
    return Gone("The session has expired.", code=SESSION_EXPIRED)


def user_banned() -> Forbidden:
    return Forbidden("The session's user is banned.", code=USER_BANNED)


def ensure_usable(*, expires_at, banned, ban_expires, now) -> None:
    """The rule every answer about a session applies, on a row or on a cache record (datetimes or timestamps).

    Gone once it has expired; Forbidden while its user's ban is in force, whatever the session says.
    """
    if expires_at <= now:
        raise session_expired()
    if ban_in_force(banned, ban_expires, now):
        raise user_banned()


def ensure_live(session: Session | None, now=None) -> Session:
    """The session itself; NotFound when there is none, Gone once it has expired, Forbidden if its user is banned."""
    if session is None:
        raise session_not_found()
    user = session.user
    ensure_usable(
        expires_at=session.expires_at, banned=user.banned, ban_expires=user.ban_expires, now=now or timezone.now()
    )
    return session


def session_find(*, session_id) -> Session | None:
    """The session row with its user, whatever its state; None for an unknown or malformed id."""
    session_uuid = parse_uuid(session_id)
    return Session.objects.select_related("user").filter(id=session_uuid).first() if session_uuid else None


def session_find_by_token(*, token: str) -> Session | None:
    return Session.objects.select_related("user").filter(token=token).first()


def session_get(*, session_id) -> Session:
    return ensure_live(session_find(session_id=session_id))


def session_get_by_token(*, token: str) -> Session:
    return ensure_live(session_find_by_token(token=token))
