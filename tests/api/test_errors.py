"""No request, however malformed, gets a 500; every error is JSON with a code."""

import pytest

pytestmark = pytest.mark.django_db


def _post(api, path, body, content_type="application/json"):
    return api.generic("POST", path, body, content_type=content_type)


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"not json",
        b"\xff\xfe\x00garbage",
        b'{"user": "\\ud800", "name": "Hero"}',
        b"[]",
        b"null",
        b'"string"',
        b'{"user": {"nested": true}, "name": ["x"]}',
        b'{"name": "\\u0000\\u202e\\ufeff"}',
    ],
)
def test_malformed_bodies_get_a_4xx_with_a_code(api, body):
    response = _post(api, "/api/v1/characters/", body)
    assert 400 <= response.status_code < 500
    assert response.json()["code"]


def test_a_huge_body_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = _post(api, "/api/v1/characters/", b'{"name": "' + b"x" * 5000 + b'"}')
    assert (response.status_code, response.json()["code"]) == (413, "body_too_large")


def test_a_wrong_content_type_is_415(api):
    response = _post(api, "/api/v1/characters/", b"user=1", content_type="application/x-www-form-urlencoded")
    assert (response.status_code, response.json()["code"]) == (415, "unsupported_media_type")


def test_unknown_api_paths_are_json_404(api):
    response = api.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_malformed_consistency_token_is_400(api):
    response = api.get("/api/v1/characters/", HTTP_X_CONSISTENCY_TOKEN="yesterday")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_consistency_token")


def test_validation_errors_list_every_field(api, make_user):
    body = {"user": str(make_user().id), "name": "Valid", "money": -1}
    response = api.post("/api/v1/characters/", body, content_type="application/json")
    assert response.json() == {
        "code": "invalid_money",
        "detail": "money must be between 0 and 2^63-1.",
        "field": "money",
    }
