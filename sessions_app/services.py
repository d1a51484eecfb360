from datetime import timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import User
from questdb.identifiers import parse_uuid
from sessions_app.keys import invalidate_sessions
from sessions_app.models import Session
from sessions_app.selectors import ensure_live


def session_refresh(*, session_id) -> Session:
    """Extend a live session to now + SESSION_TTL. An expired session stays expired; a banned user's is not extended."""
    session_uuid = parse_uuid(session_id)
    now = timezone.now()
    # One conditional UPDATE in autocommit: it cannot revive a session that has expired or extend a banned
    # user's (the ban is read in the same statement), and needs no lock.
    banned_owner = User.objects.banned(now).filter(id=OuterRef("user_id"))
    extended = session_uuid is not None and Session.objects.filter(id=session_uuid).live(now).exclude(
        Exists(banned_owner)
    ).update(expires_at=now + timedelta(seconds=settings.SESSION_TTL), updated_at=now)
    fresh = Session.objects.using(DEFAULT_DB_ALIAS).select_related("user")
    session = fresh.filter(id=session_uuid).first() if session_uuid else None
    if extended and session is not None:
        invalidate_sessions([session])  # update() sends no post_save signal
    return ensure_live(session, now)


def sessions_expire(*, session_ids) -> int:
    """Expire sessions now (staff action). A bulk update, so it invalidates the cache itself."""
    with transaction.atomic():
        sessions = list(Session.objects.select_for_update().filter(id__in=session_ids).live())
        now = timezone.now()
        Session.objects.filter(id__in=[s.id for s in sessions]).update(expires_at=now, updated_at=now)
        invalidate_sessions(sessions)
        return len(sessions)


def sessions_sign_out_user(*, user_id) -> int:
    """Sign a user out everywhere: delete all of their sessions, as the identity app's revocation does."""
    user_uuid = parse_uuid(user_id)
    if user_uuid is None:
        return 0
    with transaction.atomic():
        # QuerySet.delete() sends post_delete per row, so each session leaves the cache.
        return Session.objects.filter(user_id=user_uuid).delete()[1].get(Session._meta.label, 0)
