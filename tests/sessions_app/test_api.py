from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from sessions_app.models import Session

pytestmark = pytest.mark.django_db

SESSION_FIELDS = {"id", "user", "expires_at", "ip_address", "user_agent", "impersonated_by", "created_at", "updated_at"}


@pytest.fixture
def live_session(make_user):
    return Session.objects.create(
        user=make_user(username="Sleeper"),
        token="super-secret-token",
        expires_at=timezone.now() + timedelta(hours=1),
        ip_address="203.0.113.9",
        user_agent="GameClient/1.0",
    )


@pytest.fixture
def expired_session(make_user):
    return Session.objects.create(
        user=make_user(), token="stale-token", expires_at=timezone.now() - timedelta(seconds=1)
    )


def _lookup(api, token):
    return api.post("/api/v1/sessions/lookup/", {"token": token}, content_type="application/json")


def test_session_by_id_embeds_the_user_and_never_the_token(api, live_session):
    response = api.get(f"/api/v1/sessions/{live_session.id}/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == SESSION_FIELDS
    assert body["user"]["username"] == "Sleeper"
    assert (body["impersonated_by"], body["user"]["banned"]) == (None, False)
    assert b"super-secret-token" not in response.content


def test_lookup_by_token_finds_the_session(api, live_session):
    response = _lookup(api, "super-secret-token")
    assert response.status_code == 200
    assert response.json()["id"] == str(live_session.id)
    assert b"super-secret-token" not in response.content


@pytest.mark.parametrize("path", ["00000000-0000-0000-0000-000000000000", "garbage"])
def test_unknown_sessions_are_404(api, path):
    response = api.get(f"/api/v1/sessions/{path}/")
    assert (response.status_code, response.json()["code"]) == (404, "session_not_found")
    assert _lookup(api, "no-such-token").status_code == 404


def test_expired_sessions_are_410(api, expired_session):
    assert api.get(f"/api/v1/sessions/{expired_session.id}/").status_code == 410
    response = _lookup(api, "stale-token")
    assert (response.status_code, response.json()["code"]) == (410, "session_expired")


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": 5}, {"token": None}, {"token": "x" * 256}, []])
def test_lookup_with_a_bad_token_field_is_400(api, body):
    response = api.post("/api/v1/sessions/lookup/", body, content_type="application/json")
    assert (response.status_code, response.json()["field"]) == (400, "token")


def test_refresh_extends_a_live_session(api, live_session, settings):
    settings.SESSION_TTL = 7200
    response = api.post(f"/api/v1/sessions/{live_session.id}/refresh/")
    assert response.status_code == 200
    live_session.refresh_from_db()
    assert live_session.expires_at > timezone.now() + timedelta(seconds=7100)
    assert response["X-Consistency-Token"]


def test_refresh_of_expired_or_unknown_sessions(api, expired_session):
    assert api.post(f"/api/v1/sessions/{expired_session.id}/refresh/").status_code == 410
    assert api.post("/api/v1/sessions/00000000-0000-0000-0000-000000000000/refresh/").status_code == 404


@pytest.mark.parametrize("path", ["sessions/{id}/", "sessions/lookup/"])
def test_session_reads_query_budget(api, live_session, path, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):  # one join of sessions and users
        if "lookup" in path:
            assert _lookup(api, "super-secret-token").status_code == 200
        else:
            assert api.get("/api/v1/" + path.format(id=live_session.id)).status_code == 200


def test_an_impersonated_session_names_the_staff_user(api, live_session, make_user):
    staff = make_user(role="admin")
    Session.objects.filter(id=live_session.id).update(impersonated_by=staff.id)
    assert api.get(f"/api/v1/sessions/{live_session.id}/").json()["impersonated_by"] == str(staff.id)


def _ban(user, *, until=None) -> None:
    User.objects.filter(id=user.id).update(banned=True, ban_reason="botting", ban_expires=until)


@pytest.mark.parametrize("until", [None, timedelta(days=1)], ids=["no-end", "ends-tomorrow"])
def test_a_banned_users_sessions_answer_403_user_banned_by_id_token_and_refresh(api, live_session, until):
    _ban(live_session.user, until=until and timezone.now() + until)
    before = Session.objects.get(id=live_session.id).expires_at
    for response in (
        api.get(f"/api/v1/sessions/{live_session.id}/"),
        _lookup(api, "super-secret-token"),
        api.post(f"/api/v1/sessions/{live_session.id}/refresh/"),
    ):
        assert (response.status_code, response.json()["code"]) == (403, "user_banned")
        assert b"super-secret-token" not in response.content
    assert Session.objects.get(id=live_session.id).expires_at == before  # the refresh extended nothing


def test_a_ban_that_has_ended_no_longer_blocks_the_session(api, live_session):
    _ban(live_session.user, until=timezone.now() - timedelta(seconds=1))
    body = api.get(f"/api/v1/sessions/{live_session.id}/").json()
    assert (body["user"]["banned"], body["id"]) == (True, str(live_session.id))
    assert api.post(f"/api/v1/sessions/{live_session.id}/refresh/").status_code == 200


def test_an_expired_session_of_a_banned_user_is_410(api, expired_session):
    _ban(expired_session.user)
    assert api.get(f"/api/v1/sessions/{expired_session.id}/").json()["code"] == "session_expired"
