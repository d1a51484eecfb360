from django.utils import timezone

from questdb.errors import Gone, NotFound
from questdb.identifiers import parse_uuid
from sessions_app.models import Session

SESSION_EXPIRED = "session_expired"


def session_not_found() -> NotFound:
    return NotFound("No such session.", code="session_not_found")


def session_expired() -> Gone:
    return Gone("The session has expired.", code=SESSION_EXPIRED)


def ensure_live(session: Session | None, now=None) -> Session:
    """The session itself; NotFound when there is none, Gone once it has expired."""
    if session is None:
        raise session_not_found()
    if session.is_expired(now or timezone.now()):
        raise session_expired()
    return session


def session_get(*, session_id) -> Session:
    session_uuid = parse_uuid(session_id)
    query = Session.objects.select_related("user")
    return ensure_live(query.filter(id=session_uuid).first() if session_uuid else None)


def session_get_by_token(*, token: str) -> Session:
    return ensure_live(Session.objects.select_related("user").filter(token=token).first())
