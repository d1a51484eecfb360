"""Over real HTTP: a replica dying mid-run fails no request, and an exhausted pool answers 503."""

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from characters.models import Character
from tests.db.helpers import connect, wait_for_replay, wait_until
from tests.e2e.conftest import gunicorn

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.slow]


def _standby(command: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "standby.sh"), command], check=True, capture_output=True, timeout=120)


def _replica_report(base, http_session) -> dict:
    return http_session.get(f"{base}/readyz", timeout=5).json()["databases"]["replica_1"]


def test_stopping_the_standby_mid_run_fails_no_request(http_session, make_user):
    character = Character.objects.create(user=make_user(), name="Survivor")
    wait_for_replay()
    url_path = f"/api/v1/characters/{character.id}/"
    statuses: list[int] = []
    stop = threading.Event()
    with gunicorn(DB_READ_HOST="127.0.0.1:5433", REDIS_URL="", GUNICORN_THREADS="4") as base:
        assert wait_until(lambda: _replica_report(base, http_session)["taking_reads"], timeout=10)

        def keep_reading() -> None:
            while not stop.is_set():
                statuses.append(http_session.get(base + url_path, timeout=10).status_code)

        readers = [threading.Thread(target=keep_reading) for _ in range(4)]
        for reader in readers:
            reader.start()
        try:
            wait_until(lambda: len(statuses) > 50, timeout=10)
            _standby("stop")
            stopped_at = len(statuses)
            assert wait_until(lambda: len(statuses) > stopped_at + 100, timeout=20)
            assert not _replica_report(base, http_session)["reachable"]
        finally:
            _standby("start")
        assert wait_until(lambda: _replica_report(base, http_session)["taking_reads"], timeout=20)
        stop.set()
        for reader in readers:
            reader.join(timeout=15)
    assert len(statuses) > 150
    assert set(statuses) == {200}


def test_an_exhausted_pool_answers_503_with_a_code_and_never_hangs(http_session, make_user):
    characters = [Character.objects.create(user=make_user(), name=f"Queue{i}") for i in range(6)]
    settings = {
        "DB_READ_HOST": "",
        "REDIS_URL": "",
        "DB_MAX_CONNECTIONS": "2",
        "DB_MIN_CONNECTIONS": "1",
        "DB_CONNECTION_TIMEOUT": "500",
        "GUNICORN_THREADS": "6",
        "DB_APPLICATION_NAME": "questdb-pool-under-test",
    }
    with gunicorn(**settings) as base, connect() as blocker:
        # Hold a lock the writes need, so each write keeps its pooled connection busy.
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE characters IN ACCESS EXCLUSIVE MODE")

        def patch(character) -> int:
            url = f"{base}/api/v1/characters/{character.id}/"
            return http_session.patch(url, json={"money": 1}, timeout=10)

        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(patch, c) for c in characters]
            assert wait_until(lambda: sum(f.done() for f in futures) >= 4, timeout=5)
            in_use = blocker.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'questdb-pool-under-test'"
            ).fetchone()[0]
            blocker.execute("ROLLBACK")
            responses = [f.result() for f in futures]
    statuses = sorted(r.status_code for r in responses)
    assert in_use <= 2
    assert statuses == [200, 200, 503, 503, 503, 503]
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.json()["code"] == "database_busy"
    assert busy.headers["Retry-After"] == "1"
