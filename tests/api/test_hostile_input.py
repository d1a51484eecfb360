"""Crafted input gets a 4xx with a JSON `code` and changes nothing: never a 500."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from characters.models import Character
from sessions_app.models import Session
from tests.cache.test_cached_reads import WsgiClient

pytestmark = pytest.mark.django_db

DEEP = "[" * 2000 + "]" * 2000


@pytest.fixture
def hero(make_user):
    return Character.objects.create(user=make_user(username="alice"), name="Hero")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users/by-username/ali%00ce/",
        "/api/v1/users/by-email/a%00@x/",
        "/api/v1/users/?search=a%00b",
        "/api/v1/users/?se%00arch=ab",
        "/api/v1/characters/?user=a%00b",
        "/api/v1/sessions/ab%00cd/",
        "/admin/accounts/user/?q=a%00b",
    ],
)
def test_a_nul_in_a_path_or_query_is_a_400_with_a_code(api, path):
    response = api.get(path)
    assert response.status_code == 400
    assert response.json()["code"] == "unsafe_text"


@pytest.mark.parametrize(
    "body",
    [
        '{"token": "a\\u0000b"}',
        '{"token": "\\ud800"}',
        '{"token": "ok", "\\u0000": 1}',
    ],
)
def test_unsafe_text_in_a_session_lookup_body_is_a_400(api, body):
    response = api.post("/api/v1/sessions/lookup/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "unsafe_text"


@pytest.mark.parametrize("name", ["Her\\u0000o", "\\ud800ero", "Hero\\udfff"])
def test_unsafe_text_in_a_create_body_is_a_400_and_creates_nothing(api, make_user, name):
    owner = make_user()
    body = f'{{"user": "{owner.id}", "name": "{name}"}}'
    response = api.post("/api/v1/characters/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "unsafe_text"
    assert not Character.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/v1/characters/"), ("patch", "/api/v1/characters/{id}/"), ("post", "/api/v1/sessions/lookup/")],
)
def test_deeply_nested_json_is_a_400_not_a_recursion_error(api, hero, method, path):
    response = getattr(api, method)(path.format(id=hero.id), DEEP, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "json_too_deep"


def test_deeply_nested_json_is_refused_with_a_read_key_too(client, read_key):
    response = client.post(
        "/api/v1/sessions/lookup/",
        '{"token": ' + "[" * 40 + "]" * 40 + "}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Api-Key {read_key}",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "json_too_deep"


def test_moderately_nested_json_is_still_parsed(api, hero):
    response = api.patch(f"/api/v1/characters/{hero.id}/", {"stats": {"level": 2}}, content_type="application/json")
    assert response.status_code == 200


@pytest.mark.parametrize("name", ["Hero\n", "Abcdefghijklmnop\n", "\nHero"])
def test_a_character_name_with_a_newline_is_a_400_not_a_database_error(api, make_user, name):
    owner = make_user()
    response = api.post("/api/v1/characters/", {"user": str(owner.id), "name": name}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_name"


def test_an_unknown_field_is_a_400(api, make_user):
    owner = make_user()
    body = {"user": str(owner.id), "name": "Hero", "gold": 5}
    response = api.post("/api/v1/characters/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_lookup_with_a_non_utf8_charset_gets_the_same_answer_from_the_cache_and_from_django(make_user, read_key):
    Session.objects.create(user=make_user(), token="tok-1", expires_at=timezone.now() + timedelta(hours=1))
    client = WsgiClient(read_key)
    body = json.dumps({"token": "tok-1"}).encode()
    assert client.request("POST", "/api/v1/sessions/lookup/", body, "application/json").status == 200  # fills
    declared_utf16 = "application/json; charset=utf-16"
    answers = [client.request("POST", "/api/v1/sessions/lookup/", body, declared_utf16).status for _ in range(2)]
    assert answers == [400, 400]
    assert client.request("POST", "/api/v1/sessions/lookup/", body, "application/json; charset=UTF-8").status == 200


def test_a_csrf_failure_outside_the_admin_is_json(make_user):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/healthz")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "csrf_failed"


def test_a_csrf_failure_in_the_admin_keeps_django_s_page(db):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


def test_a_suspicious_request_outside_the_views_is_a_json_400(api):
    response = api.get("/healthz", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_the_openapi_schema_says_what_questdb_answers(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "format" not in schema["components"]["schemas"]["User"]["properties"]["email"]
    for path, operations in schema["paths"].items():
        if path.startswith("/api/v1/"):
            for method, operation in operations.items():
                assert {"400", "414"} <= set(operation["responses"]), f"{method} {path}"
