"""Cache hits answered in front of Django keep every check and every header Django's answer has."""

import dataclasses
import io
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from wsgiref.util import setup_testing_defaults

import pytest
from django.core.wsgi import get_wsgi_application
from django.utils import timezone
from prometheus_client import REGISTRY

from questdb.api import auth as api_keys
from questdb.api.pagination import StandardPagination
from questdb.cache.hit_path import CachedReadApp
from questdb.cache.store import lookup_cache
from questdb.models import ServiceAPIKey
from sessions_app import keys as session_keys
from sessions_app.models import Session

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

ONLY_FROM_DRF = {"Allow", "Vary"}  # DRF's own headers on a viewset's answer


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class WsgiClient:
    """Calls the WSGI application the way gunicorn does, and counts the requests Django itself handled."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.django_calls = 0
        django = get_wsgi_application()

        def counting(environ, start_response):
            self.django_calls += 1
            return django(environ, start_response)

        self.app = CachedReadApp(counting)

    def request(self, method: str, path: str, body: bytes = b"", content_type: str = "", **headers) -> Answer:
        path, _, query = path.partition("?")
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "wsgi.input": io.BytesIO(body)}
        if body:
            environ.update(CONTENT_LENGTH=str(len(body)), CONTENT_TYPE=content_type)
        if self.key:
            environ["HTTP_AUTHORIZATION"] = f"Api-Key {self.key}"
        environ.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
        setup_testing_defaults(environ)
        started = {}

        def start_response(status, response_headers, exc_info=None):
            started.update(status=int(status.split()[0]), headers=dict(response_headers))

        chunks = self.app(environ, start_response)
        try:
            return Answer(started["status"], started["headers"], b"".join(chunks))
        finally:
            getattr(chunks, "close", lambda: None)()

    def get(self, path: str, **headers) -> Answer:
        return self.request("GET", path, **headers)

    def post_json(self, path: str, data: dict, **headers) -> Answer:
        return self.request("POST", path, json.dumps(data).encode(), "application/json", **headers)


@pytest.fixture
def front(write_key):
    return WsgiClient(write_key)


@pytest.fixture
def cached_user(front, make_user):
    user = make_user(username="Hot", email="hot@example.com")
    assert front.get(f"/api/v1/users/{user.id}/").status == 200  # Django answered and filled the cache
    return user


@pytest.fixture
def live_session(make_user):
    return Session.objects.create(user=make_user(), token="hot-token", expires_at=timezone.now() + timedelta(hours=1))


def read_requests(user, character, session):
    return {
        "user by id": ("GET", f"/api/v1/users/{user.id}/", None),
        "user by username": ("GET", "/api/v1/users/by-username/hot/", None),
        "user by email": ("GET", "/api/v1/users/by-email/HOT@example.com/", None),
        "character by id": ("GET", f"/api/v1/characters/{character['id']}/", None),
        "a user's characters": ("GET", f"/api/v1/characters/?user={user.id}", None),
        "session by id": ("GET", f"/api/v1/sessions/{session.id}/", None),
        "session by token": ("POST", "/api/v1/sessions/lookup/", {"token": "hot-token"}),
        "users by id": ("POST", "/api/v1/users/batch/", {"ids": [str(user.id), str(user.id)]}),
        "characters by id": ("POST", "/api/v1/characters/batch/", {"ids": [character["id"]]}),
    }


def send(client: WsgiClient, method: str, path: str, data: dict | None) -> Answer:
    return client.post_json(path, data) if method == "POST" else client.get(path)


def test_every_cached_read_is_answered_in_front_of_django_exactly_as_django_answers(
    front, make_user, live_session, api
):
    user = make_user(username="Hot", email="hot@example.com")
    character = api.post("/api/v1/characters/", {"user": str(user.id), "name": "Hero"}, content_type="application/json")
    for name, (method, path, data) in read_requests(user, character.json(), live_session).items():
        from_django = send(front, method, path, data)  # a miss: Django answers and fills the cache
        calls = front.django_calls
        from_cache = send(front, method, path, data)
        assert front.django_calls == calls, f"{name}: Django ran for a cache hit"
        assert (from_cache.status, from_cache.body) == (from_django.status, from_django.body), name
        assert from_cache.status == 200, name
        expected = {k: v for k, v in from_django.headers.items() if k not in ONLY_FROM_DRF | {"X-Request-ID"}}
        assert {k: v for k, v in from_cache.headers.items() if k != "X-Request-ID"} == expected, name
        assert from_cache.headers["X-Request-ID"] != from_django.headers["X-Request-ID"]


@pytest.mark.parametrize("key", ["", "wrong.key"])
def test_a_cached_answer_still_needs_a_valid_key(cached_user, key):
    answer = WsgiClient(key).get(f"/api/v1/users/{cached_user.id}/")
    assert answer.status == 401
    assert answer.json()["code"] in {"not_authenticated", "invalid_api_key"}


def test_a_malformed_authorization_header_is_refused(cached_user):
    answer = WsgiClient("").get(f"/api/v1/users/{cached_user.id}/", authorization="Bearer x")
    assert answer.status == 401


def test_a_revoked_key_is_refused_even_for_cached_answers(front, cached_user, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    ServiceAPIKey.objects.update(revoked=True)
    api_keys.verdicts.clear()
    assert front.get(f"/api/v1/users/{cached_user.id}/").status == 401


def test_a_read_key_may_read_cached_answers(cached_user, read_key):
    reader = WsgiClient(read_key)
    assert reader.get(f"/api/v1/users/{cached_user.id}/").status == 200
    assert reader.django_calls == 0


def test_cached_answers_count_against_the_throttle(front, cached_user, settings):
    settings.API_THROTTLE_RATE = "3/min"
    answers = [front.get(f"/api/v1/users/{cached_user.id}/") for _ in range(4)]
    assert [a.status for a in answers].count(200) <= 3
    assert answers[-1].status == 429
    assert answers[-1].json()["code"] == "throttled"


def test_an_expired_cached_session_is_410_and_a_form_post_is_415(front, make_user):
    Session.objects.create(user=make_user(), token="soon-gone", expires_at=timezone.now() + timedelta(seconds=1))
    assert front.post_json("/api/v1/sessions/lookup/", {"token": "soon-gone"}).status == 200  # cached
    form = front.request("POST", "/api/v1/sessions/lookup/", b"token=soon-gone", "application/x-www-form-urlencoded")
    assert form.status == 415
    time.sleep(1.1)
    gone = front.post_json("/api/v1/sessions/lookup/", {"token": "soon-gone"})
    assert (gone.status, gone.json()["code"]) == (410, "session_expired")


def test_a_banned_users_cached_session_is_403_until_the_ban_ends_then_a_hit_again(front, make_user):
    user = make_user(banned=True, ban_reason="botting", ban_expires=timezone.now() + timedelta(seconds=1.5))
    session = Session.objects.create(user=user, token="banned-token", expires_at=timezone.now() + timedelta(hours=1))
    reads = [
        lambda: front.get(f"/api/v1/sessions/{session.id}/"),
        lambda: front.post_json("/api/v1/sessions/lookup/", {"token": "banned-token"}),
    ]
    for read in reads:
        for _ in range(2):  # the first fills the cache, the second is refused from the cached record
            answer = read()
            assert (answer.status, answer.json()["code"]) == (403, "user_banned")
    assert lookup_cache.peek(session_keys.session_key(session.id)) is not None
    time.sleep(1.6)  # the ban ends: the very same cached records are served, in front of Django
    calls = front.django_calls
    assert front.get(f"/api/v1/sessions/{session.id}/").json()["user"]["banned"] is True
    assert front.post_json("/api/v1/sessions/lookup/", {"token": "banned-token"}).status == 200
    assert front.django_calls == calls


def test_a_lookup_body_read_for_a_miss_still_reaches_django(front, live_session):
    answer = front.post_json("/api/v1/sessions/lookup/", {"token": "hot-token"})
    assert (answer.status, answer.json()["id"]) == (200, str(live_session.id))
    assert front.django_calls == 1
    missing = front.post_json("/api/v1/sessions/lookup/", {"token": "no-such-token"})
    assert (missing.status, missing.json()["code"]) == (404, "session_not_found")


def test_requests_django_would_refuse_or_redirect_are_left_to_django(front, cached_user, write_key, settings):
    path = f"/api/v1/users/{cached_user.id}/"
    assert front.get(path, host="evil.example").status == 400
    assert front.get(path, x_consistency_token="not-a-position").status == 400
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    front = WsgiClient(write_key)  # Django reads these settings when it builds its middleware
    assert front.get(path).status == 301
    assert front.get(path, x_forwarded_proto="https").status == 200
    assert front.django_calls == 1


def test_a_secure_hit_carries_hsts_like_django(cached_user, write_key, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    front = WsgiClient(write_key)  # fixed headers are taken from Django's middleware at start
    answer = front.get(f"/api/v1/users/{cached_user.id}/", x_forwarded_proto="https")
    assert (answer.status, front.django_calls) == (200, 0)
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=3600")
    assert "Strict-Transport-Security" not in front.get(f"/api/v1/users/{cached_user.id}/").headers


def test_a_hit_echoes_a_sane_request_id_and_replaces_an_odd_one(front, cached_user):
    path = f"/api/v1/users/{cached_user.id}/"
    assert front.get(path, x_request_id="trace-42").headers["X-Request-ID"] == "trace-42"
    assert front.get(path, x_request_id="no spaces allowed").headers["X-Request-ID"] != "no spaces allowed"


def test_a_hit_is_logged_and_measured_under_the_viewsets_route_name(front, cached_user, caplog, write_key):
    labels = {"route": "user-detail", "method": "GET", "status": "200"}
    before = REGISTRY.get_sample_value("questdb_http_request_duration_seconds_count", labels) or 0
    with caplog.at_level(logging.INFO, logger="questdb.request"):
        front.get(f"/api/v1/users/{cached_user.id}/")
    assert front.django_calls == 1  # only the fixture's fill
    assert REGISTRY.get_sample_value("questdb_http_request_duration_seconds_count", labels) == before + 1
    (record,) = [r for r in caplog.records if r.name == "questdb.request"]
    assert (record.status, record.api_key, record.method) == (200, "character-server", "GET")
    assert write_key not in caplog.text


def test_a_fault_in_front_of_django_falls_back_to_django(front, live_session, monkeypatch, caplog):
    assert front.post_json("/api/v1/sessions/lookup/", {"token": "hot-token"}).status == 200
    read = next(r for r in front.app.reads if r.route == "session-lookup")

    def broken(record):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(
        front.app,
        "reads",
        [dataclasses.replace(r, serve=broken) if r is read else r for r in front.app.reads],
    )
    answer = front.post_json("/api/v1/sessions/lookup/", {"token": "hot-token"})
    assert (answer.status, answer.json()["id"]) == (200, str(live_session.id))
    assert front.django_calls == 2
    assert "cached read failed" in caplog.text
    assert "hot-token" not in caplog.text
    assert session_keys.session_token_key("hot-token").value not in caplog.text


def test_an_oversized_body_is_left_to_django(front, live_session):
    front.post_json("/api/v1/sessions/lookup/", {"token": "hot-token"})
    answer = front.post_json("/api/v1/sessions/lookup/", {"token": "hot-token", "padding": "x" * 5000})
    assert answer.status == 200
    assert front.django_calls == 2


def test_a_long_character_list_is_paged_by_the_view(api, make_user, settings, monkeypatch):
    settings.MAX_CHARACTERS_PER_USER = 5
    monkeypatch.setattr(StandardPagination, "page_size", 2)
    owner = make_user()
    for number in range(3):
        api.post(
            "/api/v1/characters/", {"user": str(owner.id), "name": f"Page{number}"}, content_type="application/json"
        )
    first = api.get(f"/api/v1/characters/?user={owner.id}").json()
    again = api.get(f"/api/v1/characters/?user={owner.id}").json()
    assert first == again
    assert first["count"] == 3
    assert len(first["results"]) == 2
    assert first["next"]
