"""The per-key throttle counts in Redis, shared by processes, exactly near the limit."""

import time

import pytest

from questdb.api.throttling import WindowCounter

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_two_processes_share_one_limit_and_overshoot_little(settings):
    assert settings.REDIS_URL
    first, second = WindowCounter(), WindowCounter()  # as in two gunicorn workers
    allowed = sum((first if number % 2 else second).allow("shared-key", limit=50, period=60) for number in range(400))
    assert 50 <= allowed <= 55


def test_far_from_the_limit_most_requests_cost_no_round_trip(settings, monkeypatch):
    counter = WindowCounter()
    calls = []
    real_add = counter._add
    monkeypatch.setattr(counter, "_add", lambda *args: calls.append(1) or real_add(*args))
    started = time.monotonic()
    for _ in range(1000):
        assert counter.allow("busy-key", limit=1_000_000, period=60)
    elapsed = time.monotonic() - started
    assert len(calls) <= 2 + elapsed / 0.1


def test_keys_and_windows_are_counted_apart():
    counter = WindowCounter()
    assert [counter.allow("key-a", limit=1, period=60) for _ in range(2)] == [True, False]
    assert counter.allow("key-b", limit=1, period=60)
    assert counter.allow("key-c", limit=1, period=1)
    time.sleep(1.05)
    assert counter.allow("key-c", limit=1, period=1)  # a new window
