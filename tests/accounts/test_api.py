from datetime import datetime, timedelta

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db

USER_FIELDS = {
    "id",
    "username",
    "display_username",
    "name",
    "email",
    "email_verified",
    "image",
    "role",
    "banned",
    "ban_reason",
    "ban_expires",
    "created_at",
    "updated_at",
}


def test_user_by_id_returns_the_documented_fields(api, make_user):
    user = make_user(username="Alice", email="alice@example.com", role="gm")
    response = api.get(f"/api/v1/users/{user.id}/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == USER_FIELDS
    assert (body["id"], body["username"], body["role"]) == (str(user.id), "Alice", "gm")
    assert (body["banned"], body["ban_reason"], body["ban_expires"]) == (False, None, None)


def test_a_ban_is_part_of_the_user(api, make_user):
    user = make_user(banned=True, ban_reason="botting", ban_expires=timezone.now() + timedelta(days=1))
    body = api.get(f"/api/v1/users/{user.id}/").json()
    assert (body["banned"], body["ban_reason"]) == (True, "botting")
    assert datetime.fromisoformat(body["ban_expires"]) == user.ban_expires


def test_a_user_without_a_username_is_found_by_id_and_email_but_not_by_username(api, make_user):
    user = make_user(username=None, email="nameless@example.com")
    body = api.get(f"/api/v1/users/{user.id}/").json()
    assert (body["username"], body["display_username"]) == (None, None)
    assert api.get("/api/v1/users/by-email/nameless@example.com/").json()["id"] == str(user.id)
    for username in ("None", "null", "%20"):
        assert api.get(f"/api/v1/users/by-username/{username}/").status_code == 404


def test_free_text_roles_and_long_values_are_returned_as_written(api, make_user):
    long_image = "data:image/png;base64," + "A" * 5000
    user = make_user(role="moderator,gm", display_username="D" * 40, image=long_image)
    body = api.get(f"/api/v1/users/{user.id}/").json()
    assert (body["role"], body["display_username"], body["image"]) == ("moderator,gm", "D" * 40, long_image)


@pytest.mark.parametrize("path", ["by-username/aLiCe", "by-email/ALICE@example.COM"])
def test_lookups_by_username_and_email_ignore_case(api, make_user, path):
    user = make_user(username="Alice", email="alice@example.com")
    response = api.get(f"/api/v1/users/{path}/")
    assert response.status_code == 200
    assert response.json()["id"] == str(user.id)


@pytest.mark.parametrize(
    "path",
    [
        "00000000-0000-0000-0000-000000000000",
        "not-a-uuid",
        "by-username/nobody",
        "by-email/nobody@example.com",
        "%F0%9F%92%A9",
    ],
)
def test_unknown_or_malformed_users_are_404_with_a_code(api, path):
    response = api.get(f"/api/v1/users/{path}/")
    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"


def test_search_lists_matching_users_in_the_paginated_envelope(api, make_user):
    make_user(username="dragonslayer")
    make_user(username="knight", email="dragon@example.com")
    make_user(username="bystander")
    body = api.get("/api/v1/users/?search=dragon").json()
    assert set(body) >= {"count", "next", "previous", "results"}
    assert sorted(u["username"] for u in body["results"]) == ["dragonslayer", "knight"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_users_are_read_only(api, make_user, method):
    user = make_user()
    for path in ("/api/v1/users/", f"/api/v1/users/{user.id}/"):
        response = getattr(api, method)(path, data={}, content_type="application/json")
        assert response.status_code == 405
        assert response.json()["code"] == "method_not_allowed"


def test_a_user_batch_answers_each_id_as_the_single_lookup_does(client, read_key, make_user, settings):
    settings.API_BATCH_LIMIT = 2
    user = make_user()
    client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {read_key}"
    response = client.post("/api/v1/users/batch/", {"ids": [str(user.id), "nope"]}, content_type="application/json")
    assert response.status_code == 200
    found, missing = response.json()["results"]
    assert found == {"id": str(user.id), "status": 200, "body": client.get(f"/api/v1/users/{user.id}/").json()}
    assert (missing["id"], missing["status"], missing["code"]) == ("nope", 404, "user_not_found")
    too_many = client.post("/api/v1/users/batch/", {"ids": ["a", "b", "c"]}, content_type="application/json")
    assert (too_many.status_code, too_many.json()["code"]) == (400, "batch_too_large")


def test_the_batch_lookups_are_in_the_openapi_schema(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    for path in ("/api/v1/users/batch/", "/api/v1/characters/batch/"):
        operation = paths[path]["post"]
        assert {"200", "400"} <= set(operation["responses"])
        assert "requestBody" in operation
