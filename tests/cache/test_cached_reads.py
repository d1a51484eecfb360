"""Cache hits answered before DRF keep every check the viewsets make."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.api.views import UserViewSet
from questdb import api_keys
from questdb.api.pagination import StandardPagination
from questdb.models import ServiceAPIKey
from sessions_app.models import Session

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def cached_user(api, make_user):
    user = make_user(username="Hot")
    assert api.get(f"/api/v1/users/{user.id}/").status_code == 200  # now cached
    return user


def test_a_hit_is_served_without_the_view(api, cached_user, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the viewset should not run for a cache hit")

    monkeypatch.setattr(UserViewSet, "retrieve", refuse)
    response = api.get(f"/api/v1/users/{cached_user.id}/")
    assert response.status_code == 200
    assert response.json()["username"] == "Hot"
    assert response["X-Request-ID"]


@pytest.mark.parametrize("header", [None, "Api-Key wrong.key", "Bearer x"])
def test_a_cached_answer_still_needs_a_valid_key(cached_user, header):
    client = Client()
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    assert client.get(f"/api/v1/users/{cached_user.id}/", **extra).status_code == 401


def test_a_revoked_key_is_refused_even_for_cached_answers(cached_user, write_key, settings):
    client = Client()
    settings.API_KEY_CACHE_SECONDS = 0
    ServiceAPIKey.objects.update(revoked=True)
    api_keys.verdicts.clear()
    response = client.get(f"/api/v1/users/{cached_user.id}/", HTTP_AUTHORIZATION=f"Api-Key {write_key}")
    assert response.status_code == 401


def test_a_read_key_may_read_cached_answers(cached_user, read_key):
    response = Client().get(f"/api/v1/users/{cached_user.id}/", HTTP_AUTHORIZATION=f"Api-Key {read_key}")
    assert response.status_code == 200


def test_cached_answers_count_against_the_throttle(api, cached_user, settings):
    settings.API_THROTTLE_RATE = "3/min"
    statuses = [api.get(f"/api/v1/users/{cached_user.id}/").status_code for _ in range(4)]
    assert statuses[-1] == 429
    assert statuses.count(200) <= 3


def test_an_expired_cached_session_is_410_and_a_form_post_is_415(api, make_user):
    Session.objects.create(user=make_user(), token="hot-token", expires_at=timezone.now() + timedelta(seconds=1))
    lookup = {"path": "/api/v1/sessions/lookup/", "data": {"token": "hot-token"}, "content_type": "application/json"}
    assert api.post(**lookup).status_code == 200  # cached
    form = api.post("/api/v1/sessions/lookup/", "token=hot-token", content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415
    time.sleep(1.1)
    assert api.post(**lookup).status_code == 410


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
