"""The lookup cache on real Redis: hits, misses, invalidation on every write path, races and outages."""

import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections, transaction
from django.urls import reverse
from django.utils import timezone

from characters.api import lookups as character_lookups
from characters.models import Character
from questdb.cache import keys as key_module
from questdb.cache.store import EVENTS, Key, lookup_cache
from sessions_app.models import Session
from tests.cache.consumer import wait_for_invalidation

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def _closing(target):
    """A thread body that returns its database connections to the pool when it ends."""

    def run():
        try:
            target()
        finally:
            connections.close_all()

    return run


def _events(family: str, event: str) -> float:
    return EVENTS.labels(family, event)._value.get()


@pytest.fixture
def owner(make_user):
    return make_user(username="Cached", email="cached@example.com")


@pytest.fixture
def character(owner):
    character = Character.objects.create(user=owner, name="Hoarder")
    wait_for_invalidation()  # the insert's own invalidation (of the owner's list) has landed
    return character


@pytest.fixture
def session(owner):
    return Session.objects.create(user=owner, token="cache-token", expires_at=timezone.now() + timedelta(hours=1))


LOOKUPS = [
    ("user", lambda api, o, c, s: api.get(f"/api/v1/users/{o.id}/")),
    ("user_username", lambda api, o, c, s: api.get("/api/v1/users/by-username/CACHED/")),
    ("user_email", lambda api, o, c, s: api.get("/api/v1/users/by-email/Cached@Example.com/")),
    ("character", lambda api, o, c, s: api.get(f"/api/v1/characters/{c.id}/")),
    ("user_characters", lambda api, o, c, s: api.get(f"/api/v1/characters/?user={o.id}")),
    ("session", lambda api, o, c, s: api.get(f"/api/v1/sessions/{s.id}/")),
    (
        "session_token",
        lambda api, o, c, s: api.post(
            "/api/v1/sessions/lookup/", {"token": "cache-token"}, content_type="application/json"
        ),
    ),
]


@pytest.mark.parametrize(("family", "lookup"), LOOKUPS, ids=[family for family, _ in LOOKUPS])
def test_a_miss_queries_once_and_a_hit_costs_no_query(
    api, owner, character, session, family, lookup, django_assert_num_queries
):
    misses, hits = _events(family, "miss"), _events(family, "hit")
    with django_assert_num_queries(1):
        first = lookup(api, owner, character, session)
    with django_assert_num_queries(0):
        second = lookup(api, owner, character, session)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert (_events(family, "miss") - misses, _events(family, "hit") - hits) == (1, 1)


def test_misses_are_not_cached_so_new_rows_appear_at_once(api, owner):
    assert api.get("/api/v1/users/by-username/newcomer/").status_code == 404
    owner.__class__.objects.create(username="newcomer", email="new@example.com")
    assert api.get("/api/v1/users/by-username/newcomer/").status_code == 200


def _warm(api, *paths) -> None:
    for path in paths:
        api.get(path)


def test_api_writes_invalidate_the_character_and_its_list(api, owner, character):
    detail, listing = f"/api/v1/characters/{character.id}/", f"/api/v1/characters/?user={owner.id}"
    _warm(api, detail, listing)
    api.patch(detail, {"money": 77}, content_type="application/json")
    assert api.get(detail).json()["money"] == 77
    assert api.get(listing).json()["results"][0]["money"] == 77
    api.delete(detail)
    assert api.get(detail).json()["deleted_at"] is not None
    assert api.get(listing).json()["results"][0]["deleted_at"] is not None
    api.post(f"{detail}restore/")
    assert api.get(detail).json()["deleted_at"] is None
    created = api.post(
        "/api/v1/characters/", {"user": str(owner.id), "name": "Second"}, content_type="application/json"
    )
    assert created.status_code == 201
    assert [c["name"] for c in api.get(listing).json()["results"]] == ["Hoarder", "Second"]


def test_session_refresh_and_expiry_invalidate(api, session, settings):
    settings.SESSION_TTL = 86400
    path = f"/api/v1/sessions/{session.id}/"
    before = api.get(path).json()["expires_at"]
    api.post(f"{path}refresh/")
    assert api.get(path).json()["expires_at"] != before
    from sessions_app.services import sessions_expire

    sessions_expire(session_ids=[session.id])
    assert api.get(path).status_code == 410
    lookup = api.post("/api/v1/sessions/lookup/", {"token": "cache-token"}, content_type="application/json")
    assert lookup.status_code == 410


def test_a_cached_session_is_never_served_after_it_expires(api, owner):
    session = Session.objects.create(user=owner, token="short", expires_at=timezone.now() + timedelta(seconds=1))
    assert api.get(f"/api/v1/sessions/{session.id}/").status_code == 200  # cached, TTL far longer
    time.sleep(1.1)
    assert api.get(f"/api/v1/sessions/{session.id}/").status_code == 410


MANAGEMENT = [("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"), ("MIN_NUM_FORMS", "0"), ("MAX_NUM_FORMS", "1000")]


def test_an_admin_edit_through_the_change_form_invalidates_every_user_key(api, staff, owner, session):
    _warm(api, f"/api/v1/users/{owner.id}/", "/api/v1/users/by-username/cached/", f"/api/v1/sessions/{session.id}/")
    form = {
        "username": "Renamed",
        "display_username": "",
        "name": "New Name",
        "email": "cached@example.com",
        "role": "gm",
        **{f"{inline}-{count}": value for inline in ("characters", "sign_in_accounts") for count, value in MANAGEMENT},
        **{f"sessions-{count}": value for count, value in MANAGEMENT},
        "sessions-TOTAL_FORMS": "1",
        "sessions-INITIAL_FORMS": "1",
        "sessions-0-id": str(session.id),
        "sessions-0-user": str(owner.id),
    }
    response = staff.post(reverse("admin:accounts_user_change", args=[owner.id]), form)
    assert response.status_code == 302
    assert api.get(f"/api/v1/users/{owner.id}/").json()["role"] == "gm"
    assert api.get("/api/v1/users/by-username/cached/").status_code == 404
    assert api.get("/api/v1/users/by-username/renamed/").json()["name"] == "New Name"
    assert api.get(f"/api/v1/sessions/{session.id}/").json()["user"]["username"] == "Renamed"


def test_admin_actions_invalidate(api, staff, character, session):
    _warm(api, f"/api/v1/characters/{character.id}/", f"/api/v1/sessions/{session.id}/")
    changelist = reverse("admin:characters_character_changelist")
    staff.post(changelist, {"action": "schedule_deletion", "_selected_action": [str(character.id)], "confirmed": "yes"})
    assert api.get(f"/api/v1/characters/{character.id}/").json()["deleted_at"] is not None
    sessions = reverse("admin:sessions_app_session_changelist")
    staff.post(sessions, {"action": "expire_now", "_selected_action": [str(session.id)], "confirmed": "yes"})
    assert api.get(f"/api/v1/sessions/{session.id}/").status_code == 410


def test_purge_invalidates(api, character):
    api.delete(f"/api/v1/characters/{character.id}/")
    _warm(api, f"/api/v1/characters/?user={character.user_id}")
    Character.objects.filter(id=character.id).update(purge_at=timezone.now() + timedelta(milliseconds=300))
    time.sleep(0.4)
    call_command("purge_characters")
    assert api.get(f"/api/v1/characters/?user={character.user_id}").json()["results"] == []


def test_deleting_a_user_cascades_through_the_cache(api, owner, character, session):
    paths = [f"/api/v1/users/{owner.id}/", f"/api/v1/characters/{character.id}/", f"/api/v1/sessions/{session.id}/"]
    _warm(api, *paths)
    from accounts.services import user_delete

    user_delete(user=owner)
    assert [api.get(path).status_code for path in paths] == [404, 404, 404]


def test_a_rolled_back_write_leaves_the_cache_alone(api, character):
    path = f"/api/v1/characters/{character.id}/"
    cached = api.get(path).content
    invalidations = _events("character", "invalidation")

    def write_then_fail() -> None:
        with transaction.atomic():
            character.money = 999
            character.save()
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert _events("character", "invalidation") == invalidations
    assert api.get(path).content == cached


def test_a_reader_that_read_before_a_write_cannot_fill_the_old_value_after_it(api, character, monkeypatch):
    """The stale-fill race, made deterministic: the reader is held between its read and its fill."""
    read_done, write_done = threading.Event(), threading.Event()
    real_get = character_lookups.selectors.character_get

    def slow_get(**kwargs):
        found = real_get(**kwargs)
        read_done.set()
        write_done.wait(5)
        return found

    monkeypatch.setattr(character_lookups.selectors, "character_get", slow_get)
    reader = threading.Thread(target=_closing(lambda: character_lookups.character_payload(character_id=character.id)))
    reader.start()
    assert read_done.wait(5)
    character.money = 123
    character.save()  # commits and invalidates while the reader holds the old row
    write_done.set()
    reader.join(5)
    monkeypatch.setattr(character_lookups.selectors, "character_get", real_get)
    assert api.get(f"/api/v1/characters/{character.id}/").json()["money"] == 123


def test_a_burst_of_misses_on_one_key_costs_one_query(character, monkeypatch):
    calls, lock = [], threading.Lock()
    real_get = character_lookups.selectors.character_get

    def counted_get(**kwargs):
        with lock:
            calls.append(1)
        time.sleep(0.05)  # widen the window in which the others miss too
        return real_get(**kwargs)

    monkeypatch.setattr(character_lookups.selectors, "character_get", counted_get)
    barrier, bodies = threading.Barrier(8), []

    def read():
        barrier.wait()
        bodies.append(character_lookups.character_payload(character_id=character.id)[0])

    timeouts = _events("character", "wait_timeout")
    threads = [threading.Thread(target=_closing(read)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    # On a loaded machine the filler can outlast LOCK_WAIT_SECONDS: a waiter that gave up queries by itself.
    assert len(calls) == 1 + (_events("character", "wait_timeout") - timeouts)
    assert len(calls) < 8
    assert len(bodies) == 8
    assert len(set(bodies)) == 1


def test_keys_are_versioned_by_the_payload_shape(api, character, monkeypatch):
    path = f"/api/v1/characters/{character.id}/"
    api.get(path)
    assert Key("character", str(character.id)).value.endswith(f":v{key_module.SHAPE_VERSION}:character:{character.id}")
    misses = _events("character", "miss")
    monkeypatch.setattr(key_module, "SHAPE_VERSION", key_module.SHAPE_VERSION + 1)
    api.get(path)
    assert _events("character", "miss") == misses + 1


def test_counters_are_exported_as_metrics(api, character):
    api.get(f"/api/v1/characters/{character.id}/")
    api.get(f"/api/v1/characters/{character.id}/")
    metrics = api.get("/metrics").content.decode()
    assert 'questdb_cache_events_total{event="hit",family="character"}' in metrics


def test_redis_down_slow_and_back(api, character, private_redis, caplog):
    path = f"/api/v1/characters/{character.id}/"
    assert api.get(path).status_code == 200  # filled in the private Redis
    hits = _events("character", "hit")
    api.get(path)
    assert _events("character", "hit") == hits + 1

    # Slow (hung) Redis: every request still answers correctly, in about a socket timeout at worst.
    private_redis.pause()
    started = time.monotonic()
    for money in (5, 6):
        assert api.patch(path, {"money": money}, content_type="application/json").status_code == 200
        assert api.get(path).json()["money"] == money
    assert time.monotonic() - started < 2
    # The invalidations Redis missed are replayed before its (stale) entry can be served again.
    private_redis.resume()
    time.sleep(0.35)
    assert api.get(path).json()["money"] == 6

    # Stopped and restarted: answers from the database meanwhile, errors logged once per interval.
    caplog.clear()
    private_redis.stop()
    for _ in range(30):
        assert api.get(path).json()["money"] == 6
    warnings = [r for r in caplog.records if "redis unavailable" in r.getMessage()]
    assert 1 <= len(warnings) <= 3
    private_redis.start()
    time.sleep(0.35)
    wait_for_invalidation()  # the consumer is back too: the cache is trusted again
    api.get(path)
    hits = _events("character", "hit")
    assert api.get(path).json()["money"] == 6
    assert _events("character", "hit") == hits + 1  # caching resumed by itself


def test_lookup_cache_keys_never_contain_a_session_token(api, session):
    from django_redis import get_redis_connection

    api.post("/api/v1/sessions/lookup/", {"token": "cache-token"}, content_type="application/json")
    keys = [key.decode() for key in get_redis_connection("default").keys("*")]
    assert keys
    assert not any("cache-token" in key for key in keys)
    assert lookup_cache.enabled


def test_a_ban_staff_set_in_the_admin_refuses_the_cached_session_at_once(api, staff, owner, session):
    lookup = {"path": "/api/v1/sessions/lookup/", "data": {"token": "cache-token"}, "content_type": "application/json"}
    _warm(api, f"/api/v1/sessions/{session.id}/")
    assert api.post(**lookup).status_code == 200
    ban = {"confirmed": "yes", "reason": "chargeback", "duration": ""}
    assert staff.post(reverse("admin:user_ban", args=[owner.id]), ban).status_code == 302
    # A ban signs the user out everywhere (their sessions are deleted), and no cached copy answers.
    for response in (api.get(f"/api/v1/sessions/{session.id}/"), api.post(**lookup)):
        assert response.status_code in (403, 404), response.json()
    assert api.get(f"/api/v1/users/{owner.id}/").json()["ban_reason"] == "chargeback"


def test_an_invalidation_renews_every_stamp_and_keeps_the_highest_wal_position():
    fresh, stamped, ahead = Key("character", "fresh"), Key("character", "stamped"), Key("character", "ahead")
    client = lookup_cache.client()
    client.set(stamped.stamp, "100:old-nonce")
    client.set(ahead.stamp, "900:old-nonce")
    for key in (fresh, stamped, ahead):
        client.set(key.value, b"cached")
    lookup_cache._send_invalidations([fresh, stamped, ahead], 500)
    stamps = {key: client.get(key.stamp).decode() for key in (fresh, stamped, ahead)}
    nonce = stamps[fresh].split(":", 1)[1]
    assert stamps == {fresh: f"500:{nonce}", stamped: f"500:{nonce}", ahead: f"900:{nonce}"}
    assert nonce != "old-nonce"
    assert all(client.ttl(key.stamp) > 0 for key in (fresh, stamped, ahead))
    assert client.exists(fresh.value, stamped.value, ahead.value) == 0
