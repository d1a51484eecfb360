from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from questdb.identifiers import parse_uuid
from sessions_app.caching import invalidate_sessions
from sessions_app.models import Session
from sessions_app.selectors import ensure_live


def session_refresh(*, session_id) -> Session:
    """Extend a live session to now + SESSION_TTL. An expired session stays expired."""
    with transaction.atomic():
        session_uuid = parse_uuid(session_id)
        query = Session.objects.select_for_update().select_related("user")
        now = timezone.now()
        session = ensure_live(query.filter(id=session_uuid).first() if session_uuid else None, now)
        session.expires_at = now + timedelta(seconds=settings.SESSION_TTL)
        session.save(update_fields=["expires_at"])
        return session


def sessions_expire(*, session_ids) -> int:
    """Expire sessions now (staff action). A bulk update, so it invalidates the cache itself."""
    with transaction.atomic():
        sessions = list(Session.objects.select_for_update().filter(id__in=session_ids).live())
        now = timezone.now()
        Session.objects.filter(id__in=[s.id for s in sessions]).update(expires_at=now, updated_at=now)
        invalidate_sessions(sessions)
        return len(sessions)
