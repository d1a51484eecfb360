"""Concurrent writes through the real API, from real threads, on committed data."""

import threading

import pytest
from django.db import connections
from django.test import Client

from characters.models import Character
from characters.shapes import STAT_KEYS

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def _race(calls: int, request) -> list:
    barrier = threading.Barrier(calls)
    results = [None] * calls

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = request(index)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_concurrent_creates_of_one_name_give_one_201_and_409s(write_key, make_user):
    owners = [make_user() for _ in range(6)]

    def create(index: int):
        client = Client(HTTP_AUTHORIZATION=f"Api-Key {write_key}")
        body = {"user": str(owners[index].id), "name": "Contested"}
        response = client.post("/api/v1/characters/", body, content_type="application/json")
        return response.status_code, response.json().get("code")

    results = _race(6, create)
    assert sorted(status for status, _ in results) == [201, 409, 409, 409, 409, 409]
    assert {code for status, code in results if status == 409} == {"name_taken"}
    assert Character.objects.using("default").filter(name__iexact="contested").count() == 1


def test_concurrent_creates_for_one_user_never_exceed_the_limit(write_key, make_user, settings):
    settings.MAX_CHARACTERS_PER_USER = 2
    owner = make_user()

    def create(index: int):
        client = Client(HTTP_AUTHORIZATION=f"Api-Key {write_key}")
        body = {"user": str(owner.id), "name": f"Racer{index}"}
        return client.post("/api/v1/characters/", body, content_type="application/json").status_code

    results = _race(6, create)
    assert sorted(results) == [201, 201, 409, 409, 409, 409]
    assert Character.objects.using("default").filter(user=owner).count() == 2


def test_concurrent_creates_never_exceed_the_limit_for_an_owner_with_unslotted_characters(
    write_key, make_user, settings
):
    settings.MAX_CHARACTERS_PER_USER = 3
    owner = make_user()
    Character.objects.create(user=owner, name="Unslotted")  # written around the service: the owner is serialized

    def create(index: int):
        client = Client(HTTP_AUTHORIZATION=f"Api-Key {write_key}")
        body = {"user": str(owner.id), "name": f"Queued{index}"}
        return client.post("/api/v1/characters/", body, content_type="application/json").status_code

    assert sorted(_race(6, create)) == [201, 201, 409, 409, 409, 409]
    assert Character.objects.using("default").filter(user=owner).count() == 3


def test_concurrent_patches_of_one_character_all_land(api, write_key, make_user):
    owner = make_user()
    created = api.post("/api/v1/characters/", {"user": str(owner.id), "name": "Busy"}, content_type="application/json")
    path = f"/api/v1/characters/{created.json()['id']}/"
    assert api.get(path).status_code == 200  # cached before the race
    keys = STAT_KEYS[:6]

    def patch(index: int):
        client = Client(HTTP_AUTHORIZATION=f"Api-Key {write_key}")
        body = {"stats": {keys[index]: 100 + index}}
        return client.patch(path, body, content_type="application/json").status_code

    assert _race(6, patch) == [200] * 6
    stored = Character.objects.using("default").get(id=created.json()["id"]).stats
    assert [stored[key] for key in keys] == [100 + index for index in range(6)]
    assert api.get(path).json()["stats"] == stored  # and the cache no longer has an older version
