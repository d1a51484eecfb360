from datetime import timedelta

import pytest
from django.utils import timezone

from questdb.errors import Gone, NotFound
from sessions_app import selectors, services
from sessions_app.models import Session

pytestmark = pytest.mark.django_db


def _session(user, *, expires_in: timedelta, token: str = "secret") -> Session:
    return Session.objects.create(user=user, token=token, expires_at=timezone.now() + expires_in)


def test_refresh_extends_a_live_session_by_the_session_ttl(make_user, settings):
    settings.SESSION_TTL = 600
    session = _session(make_user(), expires_in=timedelta(seconds=5))
    before = timezone.now()
    refreshed = services.session_refresh(session_id=session.id)
    assert before + timedelta(seconds=600) <= refreshed.expires_at <= timezone.now() + timedelta(seconds=600)


def test_an_expired_session_is_not_revived(make_user):
    session = _session(make_user(), expires_in=-timedelta(seconds=1))
    with pytest.raises(Gone):
        services.session_refresh(session_id=session.id)
    assert Session.objects.get(id=session.id).expires_at < timezone.now()


def test_lookups_distinguish_unknown_from_expired(make_user):
    _session(make_user(), expires_in=-timedelta(seconds=1), token="old")
    with pytest.raises(Gone):
        selectors.session_get_by_token(token="old")
    with pytest.raises(NotFound):
        selectors.session_get_by_token(token="never-issued")
    with pytest.raises(NotFound):
        selectors.session_get(session_id="not-a-uuid")


def test_expire_now_ends_live_sessions_only(make_user):
    user = make_user()
    live = _session(user, expires_in=timedelta(hours=1), token="a")
    _session(user, expires_in=-timedelta(hours=1), token="b")
    assert services.sessions_expire(session_ids=[live.id]) == 1
    with pytest.raises(Gone):
        selectors.session_get(session_id=live.id)
