import pytest

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
