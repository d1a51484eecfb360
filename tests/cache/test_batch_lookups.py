"""Batch lookups on real Redis and PostgreSQL: one round trip for the hits, one query for the misses,
each item exactly the single lookup's answer, and the store's guarantees kept for every miss."""

import json
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.api import lookups as user_lookups
from characters import selectors, services
from characters.api import lookups as character_lookups
from characters.keys import character_key
from characters.models import Character
from questdb.cache.store import lookup_cache
from questdb.db import router as routing
from questdb.errors import NotFound
from tests.cache.consumer import wait_for_invalidation
from tests.cache.redis_monitor import Monitor

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def characters(make_user):
    owner = make_user()
    characters = [Character.objects.create(user=owner, name=f"Batch{n}", money=n) for n in range(5)]
    wait_for_invalidation()  # the inserts' own invalidations have landed before the counting starts
    return characters


@pytest.fixture
def monitor(private_redis, settings):
    settings.CACHE_LOCAL_MAX_BYTES = 0  # these tests count Redis round trips; tests/cache/test_local_layer.py has none
    lookup_cache.reset()
    return Monitor(settings.REDIS_URL)


def _ids(characters) -> list[str]:
    return [str(c.id) for c in characters]


def test_a_batch_of_hits_is_one_redis_round_trip_and_no_query(characters, monitor):
    ids = _ids(characters)
    character_lookups.character_payloads(character_ids=ids)  # fills
    results = []
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["replica_1"]) as replica,
    ):
        commands = monitor.commands_during(
            lambda: results.extend(character_lookups.character_payloads(character_ids=ids))
        )
    assert commands == ["EVALSHA"]  # one script: the heartbeat (trust), every value and stamp
    assert len(primary) + len(replica) == 0
    assert all(result.found for result in results)


def test_the_misses_of_a_batch_are_one_query_and_one_fill_round_trip(characters, monitor):
    ids = _ids(characters)
    character_lookups.character_payloads(character_ids=ids[:1])  # loads the fill script, caches one
    results = []
    with CaptureQueriesContext(connections["default"]) as queries:
        commands = monitor.commands_during(
            lambda: results.extend(character_lookups.character_payloads(character_ids=ids))
        )
    assert commands == ["EVALSHA", "EVALSHA"]  # the lookup script, then the fill script
    assert len(queries) == 1
    assert [result.body for result in results] == [character_lookups.character_payload(character_id=i)[0] for i in ids]
    with CaptureQueriesContext(connections["default"]) as queries:
        assert monitor.commands_during(lambda: character_lookups.character_payloads(character_ids=ids)) == ["EVALSHA"]
    assert len(queries) == 0


def test_each_item_is_the_single_lookups_answer_in_the_order_asked(characters, settings):
    settings.CHARACTER_DELETE_GRACE = 3600
    pending, lapsed = characters[1], characters[2]
    services.character_schedule_deletion(character_id=pending.id)
    services.character_schedule_deletion(character_id=lapsed.id)
    Character.objects.filter(id=lapsed.id).update(purge_at=timezone.now() - timedelta(seconds=1))
    asked = [str(characters[0].id), str(pending.id), str(lapsed.id), "not-a-uuid", UNKNOWN, str(characters[0].id)]
    for cached in (False, True):  # answered from the database, then from the cache
        results = character_lookups.character_payloads(character_ids=asked)
        assert [result.id for result in results] == asked
        for result, character_id in zip(results, asked, strict=True):
            if result.found:
                assert (result.body, result.headers) == character_lookups.character_payload(character_id=character_id)
            else:
                with pytest.raises(NotFound) as single:
                    character_lookups.character_payload(character_id=character_id)
                assert (result.error.code, result.error.message) == (single.value.code, single.value.message)
        assert [result.found for result in results] == [True, True, False, False, False, True], cached
    assert 3590 <= json.loads(results[1].body)["seconds_until_purge"] <= 3600


def test_a_write_during_a_batchs_read_is_not_undone_by_its_fill(characters, monkeypatch):
    target = characters[0]
    read = selectors.character_get_many

    def with_a_write_in_between(**kwargs):
        rows = read(**kwargs)  # the old row, read before the write
        services.character_update(character_id=target.id, changes={"money": 999})
        return rows

    monkeypatch.setattr(selectors, "character_get_many", with_a_write_in_between)
    old = character_lookups.character_payloads(character_ids=[str(target.id)])[0]
    monkeypatch.undo()
    assert b'"money":0' in old.body  # the reader answered with what it read...
    assert lookup_cache.client().get(character_key(target.id).value) is None  # ...but did not cache it
    assert b'"money":999' in character_lookups.character_payload(character_id=target.id)[0]


def test_the_misses_are_read_where_the_newest_invalidation_has_been_replayed(characters, monkeypatch):
    services.character_update(character_id=characters[0].id, changes={"money": 5})  # stamps character 0
    stamp = lookup_cache.client().get(character_key(characters[0].id).stamp)
    floors = []
    read = selectors.character_get_many

    def noting_the_floor(**kwargs):
        floors.append(routing._read_floor.get())
        return read(**kwargs)

    monkeypatch.setattr(selectors, "character_get_many", noting_the_floor)
    character_lookups.character_payloads(character_ids=_ids(characters))
    assert floors == [int(stamp.split(b":")[0])]
    assert floors[0] > 0


def test_inside_a_transaction_a_batch_reads_the_database_and_caches_nothing(characters):
    with transaction.atomic():
        results = character_lookups.character_payloads(character_ids=_ids(characters))
    assert all(result.found for result in results)
    assert lookup_cache.client().get(character_key(characters[0].id).value) is None


def test_with_redis_down_a_batch_is_answered_from_the_database(characters, private_redis):
    private_redis.stop()
    results = character_lookups.character_payloads(character_ids=[*_ids(characters), UNKNOWN])
    assert [result.found for result in results] == [True] * 5 + [False]


def test_a_user_batch_is_the_single_lookups_answers(make_user, django_assert_num_queries):
    users = [make_user() for _ in range(3)]
    asked = [str(users[2].id), UNKNOWN, str(users[0].id), "x"]
    with django_assert_num_queries(1):
        results = user_lookups.user_payloads(user_ids=asked)
    with django_assert_num_queries(1):  # the unknown id again: misses are not cached, new rows appear at once
        again = user_lookups.user_payloads(user_ids=asked)
    assert [r.body for r in results] == [r.body for r in again]
    assert results[0].body == user_lookups.user_payload(user_id=users[2].id).body
    assert [(r.id, r.found, r.error and r.error.code) for r in results] == [
        (asked[0], True, None),
        (UNKNOWN, False, "user_not_found"),
        (asked[2], True, None),
        ("x", False, "user_not_found"),
    ]
