from datetime import timedelta

import pytest
from django.utils import timezone

from characters.models import Character

pytestmark = pytest.mark.django_db

CHARACTER_FIELDS = {
    "id",
    "user",
    "name",
    "money",
    "stats",
    "inventory",
    "skills",
    "looks",
    "position",
    "is_active",
    "created_at",
    "updated_at",
    "deleted_at",
    "purge_at",
    "seconds_until_purge",
}


def _create(api, user, name="Hero", **extra):
    return api.post(
        "/api/v1/characters/", {"user": str(user.id), "name": name, **extra}, content_type="application/json"
    )


def _patch(api, character_id, body, **headers):
    return api.patch(f"/api/v1/characters/{character_id}/", body, content_type="application/json", **headers)


def test_create_returns_201_with_the_object_and_its_location(api, make_user):
    owner = make_user()
    response = _create(api, owner, looks={"race": 1, "gender": 1, "face": 2, "hair": 3})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == CHARACTER_FIELDS
    assert body["user"] == str(owner.id)
    assert body["looks"]["race"] == 1
    assert body["deleted_at"] is body["purge_at"] is body["seconds_until_purge"] is None
    assert response["Location"].endswith(f"/api/v1/characters/{body['id']}/")
    assert api.get(response["Location"]).status_code == 200


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "1bad"}, "name"),
        ({"name": "x"}, "name"),
        ({"user": "not-a-uuid"}, "user"),
        ({"user": "00000000-0000-0000-0000-000000000000"}, "user"),
        ({"looks": {"race": "elf"}}, "looks"),
        ({"money": -5}, "money"),
        ({"is_deleted": True}, "is_deleted"),
    ],
)
def test_invalid_creates_are_400_naming_the_field_and_create_nothing(api, make_user, payload, field):
    owner = make_user()
    body = {"user": str(owner.id), "name": "Valid", **payload}
    response = api.post("/api/v1/characters/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Character.objects.exists()


def test_a_taken_name_in_any_case_is_409_name_taken(api, make_user):
    _create(api, make_user(), "Hero")
    response = _create(api, make_user(), "hERO")
    assert (response.status_code, response.json()["code"]) == (409, "name_taken")


def test_the_character_limit_is_409_character_limit_reached(api, make_user, settings):
    settings.MAX_CHARACTERS_PER_USER = 1
    owner = make_user()
    assert _create(api, owner, "First").status_code == 201
    response = _create(api, owner, "Second")
    assert (response.status_code, response.json()["code"]) == (409, "character_limit_reached")


def test_get_carries_an_etag_and_unknown_malformed_or_purged_ids_are_404(api, make_user):
    character_id = _create(api, make_user()).json()["id"]
    response = api.get(f"/api/v1/characters/{character_id}/")
    assert response.status_code == 200
    assert response["ETag"]
    Character.objects.filter(id=character_id).delete()
    for path in (character_id, "00000000-0000-0000-0000-000000000000", "nonsense"):
        response = api.get(f"/api/v1/characters/{path}/")
        assert (response.status_code, response.json()["code"]) == (404, "character_not_found")


def test_list_by_user_is_oldest_first_and_includes_pending_deletion(api, make_user):
    owner, other = make_user(), make_user()
    first = _create(api, owner, "Alpha").json()["id"]
    second = _create(api, owner, "Beta").json()["id"]
    _create(api, other, "Gamma")
    api.delete(f"/api/v1/characters/{first}/")
    body = api.get(f"/api/v1/characters/?user={owner.id}").json()
    assert set(body) >= {"results", "next", "previous"}
    assert [c["id"] for c in body["results"]] == [first, second]
    assert body["results"][0]["seconds_until_purge"] > 0
    assert api.get("/api/v1/characters/").json()["count"] == 3


def test_list_with_a_malformed_user_is_400(api):
    response = api.get("/api/v1/characters/?user=42")
    assert (response.status_code, response.json()["field"]) == (400, "user")


def test_patch_updates_allowed_fields_and_returns_a_new_etag(api, make_user):
    created = _create(api, make_user())
    character_id, etag = created.json()["id"], created["ETag"]
    response = _patch(
        api, character_id, {"money": 50, "position": {"map_id": 2, "x": 1, "y": 2, "z": 3}}, HTTP_IF_MATCH=etag
    )
    assert response.status_code == 200
    assert response.json()["money"] == 50
    assert response.json()["position"]["map_id"] == 2
    assert response["ETag"] != etag


def test_patch_with_a_stale_etag_is_412_and_writes_nothing(api, make_user):
    created = _create(api, make_user())
    character_id, stale = created.json()["id"], created["ETag"]
    _patch(api, character_id, {"money": 1})
    response = _patch(api, character_id, {"money": 99}, HTTP_IF_MATCH=stale)
    assert (response.status_code, response.json()["code"]) == (412, "precondition_failed")
    assert Character.objects.get(id=character_id).money == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Other"}, "name"),
        ({"user": "00000000-0000-0000-0000-000000000000"}, "user"),
        ({"money": -1}, "money"),
        ({"stats": "strong"}, "stats"),
        ({"inventory": [1, 2]}, "inventory"),
    ],
)
def test_patch_refuses_fixed_fields_and_bad_shapes_with_400(api, make_user, body, field):
    character_id = _create(api, make_user()).json()["id"]
    response = _patch(api, character_id, body)
    assert (response.status_code, response.json()["field"]) == (400, field)


def test_patch_of_a_character_pending_deletion_is_409(api, make_user):
    character_id = _create(api, make_user()).json()["id"]
    api.delete(f"/api/v1/characters/{character_id}/")
    response = _patch(api, character_id, {"money": 1})
    assert (response.status_code, response.json()["code"]) == (409, "pending_deletion")


def test_put_is_not_allowed(api, make_user):
    character_id = _create(api, make_user()).json()["id"]
    response = api.put(f"/api/v1/characters/{character_id}/", {}, content_type="application/json")
    assert response.status_code == 405


def test_delete_schedules_deletion_idempotently_and_restore_clears_it(api, make_user, settings):
    settings.CHARACTER_DELETE_GRACE = 3600
    character_id = _create(api, make_user()).json()["id"]
    first = api.delete(f"/api/v1/characters/{character_id}/")
    assert first.status_code == 200
    body = first.json()
    assert body["deleted_at"]
    assert 3590 <= body["seconds_until_purge"] <= 3600
    assert api.delete(f"/api/v1/characters/{character_id}/").json()["purge_at"] == body["purge_at"]
    restored = api.post(f"/api/v1/characters/{character_id}/restore/")
    assert restored.status_code == 200
    assert restored.json()["deleted_at"] is None
    again = api.post(f"/api/v1/characters/{character_id}/restore/")
    assert (again.status_code, again.json()["code"]) == (409, "not_pending_deletion")


def test_a_character_past_its_purge_time_reads_as_404(api, make_user):
    character_id = _create(api, make_user()).json()["id"]
    api.delete(f"/api/v1/characters/{character_id}/")
    Character.objects.filter(id=character_id).update(purge_at=timezone.now() - timedelta(seconds=1))
    assert api.get(f"/api/v1/characters/{character_id}/").status_code == 404


@pytest.mark.parametrize("count", [1, 10])
def test_listing_characters_costs_the_same_queries_for_1_or_10(
    api, make_user, settings, count, django_assert_num_queries
):
    settings.MAX_CHARACTERS_PER_USER = 10
    owner = make_user()
    for number in range(count):
        _create(api, owner, f"Hero{number}")
    api.get(f"/api/v1/characters/?user={owner.id}")  # the key verdict is cached after the first call
    with django_assert_num_queries(1):
        assert len(api.get(f"/api/v1/characters/?user={owner.id}").json()["results"]) == count
    with django_assert_num_queries(2):  # count + page
        assert api.get("/api/v1/characters/").json()["count"] == count


@pytest.mark.parametrize(
    ("method", "path", "queries"),
    [("get", "character", 1), ("patch", "character", 5), ("delete", "character", 5), ("post", "restore", 5)],
)
# Writes: savepoint, locked read, update, release, and the WAL position for X-Consistency-Token.
def test_character_endpoints_query_budget(api, make_user, method, path, queries, django_assert_max_num_queries):
    character_id = _create(api, make_user()).json()["id"]
    if path == "restore":
        api.delete(f"/api/v1/characters/{character_id}/")
    url = f"/api/v1/characters/{character_id}/" + ("restore/" if path == "restore" else "")
    with django_assert_max_num_queries(queries):
        response = getattr(api, method)(
            url, {"money": 3} if method == "patch" else None, content_type="application/json"
        )
    assert response.status_code == 200


def test_create_query_budget(api, make_user, django_assert_max_num_queries):
    owner = make_user()
    # savepoint, locked owner, one query for the limit and the name, insert, release, WAL position
    with django_assert_max_num_queries(6):
        assert _create(api, owner, "Budget").status_code == 201


def test_a_batch_answers_each_id_as_the_single_lookup_does_in_order(api, make_user, client, read_key):
    owner = make_user()
    ids = [
        api.post(
            "/api/v1/characters/", {"user": str(owner.id), "name": f"Many{n}"}, content_type="application/json"
        ).json()["id"]
        for n in range(2)
    ]
    asked = [ids[1], "00000000-0000-4000-8000-000000000000", "not-an-id", ids[0]]
    client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {read_key}"  # a read-scoped key may call it
    response = client.post("/api/v1/characters/batch/", {"ids": asked}, content_type="application/json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [item["id"] for item in results] == asked
    assert [item["status"] for item in results] == [200, 404, 404, 200]
    single = api.get(f"/api/v1/characters/{ids[1]}/")
    assert (results[0]["body"], results[0]["etag"]) == (single.json(), single["ETag"])
    assert set(results[0]) == {"id", "status", "etag", "body"}
    assert results[1] == {
        "id": asked[1],
        "status": 404,
        "code": "character_not_found",
        "detail": "No character with this id.",
    }
    assert results[2]["code"] == "character_not_found"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"ids": ["a"] * 4}, "batch_too_large"),
        ({"ids": "a,b"}, "invalid_ids"),
        ({"ids": [1, 2]}, "invalid_ids"),
        ({}, "invalid_ids"),
        ([], "invalid_ids"),
    ],
)
def test_a_malformed_or_oversized_batch_is_a_400_with_a_code(api, settings, body, code):
    settings.API_BATCH_LIMIT = 3
    response = api.post("/api/v1/characters/batch/", body, content_type="application/json")
    assert (response.status_code, response.json()["code"], response.json()["field"]) == (400, code, "ids")
    assert api.post("/api/v1/characters/batch/", {"ids": ["a"] * 3}, content_type="application/json").status_code == 200
