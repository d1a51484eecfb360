"""bench.grpc_load drives every gRPC benchmark scenario from separate processes (a one-second smoke)."""

from collections import Counter
from datetime import timedelta

import grpc
import pytest
from django.utils import timezone

from bench import grpc_load
from characters.models import Character
from sessions_app.models import Session
from tests.grpc.helpers import metric, scrape

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
COUNT = "questdb_http_request_duration_seconds_count"


def test_every_scenario_serves_calls_without_errors(grpc_app, make_user, write_key):
    users = [make_user() for _ in range(3)]
    characters = [str(Character.objects.create(user=u, name=f"Load{n}").id) for n, u in enumerate(users)]
    sessions = [
        str(Session.objects.create(user=u, token=f"load-{n}", expires_at=timezone.now() + timedelta(hours=1)).id)
        for n, u in enumerate(users)
    ]
    keys = {
        "user_id": [str(u.id) for u in users],
        "character_id": characters,
        "character_batch": characters,
        "session_refresh": sessions,
    }
    for scenario, scenario_keys in keys.items():
        result = grpc_load.run(
            address=grpc_app.address,
            api_key=write_key,
            scenario=scenario,
            keys=scenario_keys,
            duration=1.0,
            processes=1,
            concurrency=2,
            batch=3,
        )
        assert result["calls"] > 0, scenario
        assert result["errors"] == 0, scenario
    assert result["items_per_second"] == result["rps"]


def _served(port: int, path: str) -> Counter:
    text = scrape(port)
    return Counter(
        {
            status: int(metric(text, COUNT, method="GRPC", route=path, status=status))
            for status in ("OK", "UNAUTHENTICATED", "NOT_FOUND")
        }
    )


@pytest.mark.parametrize("scenario", ["character_id", "character_batch"])
def test_h2load_drives_lookups_and_the_server_counts_every_call_ok(grpc_app, make_user, read_key, scenario):
    user = make_user()
    keys = [str(Character.objects.create(user=user, name=f"H2load{n}").id) for n in range(3)]
    h2load = grpc_load.ensure_h2load()
    path = grpc_load.METHOD_PATHS[scenario]
    before = _served(grpc_app.metrics_port, path)
    result = grpc_load.run_h2load(
        h2load,
        address=grpc_app.address,
        api_key=read_key,
        scenario=scenario,
        keys=keys,
        duration=1.0,
        connections=2,
        threads=1,
        batch=3,
    )
    result = grpc_load.verify_h2load(result, before, _served(grpc_app.metrics_port, path))
    assert result["calls"] > 0
    assert result["errors"] == 0, result["error_codes"]
    # h2load's completed calls, plus the checked one before the run and any cut off at its end.
    assert 1 <= result["unmatched"] <= 1 + result["connections"]
    assert "Api-Key KEY" in result["command"]
    assert read_key not in result["command"]


def test_h2load_refuses_a_request_the_server_does_not_answer_ok(grpc_app):
    with pytest.raises(grpc.RpcError) as failed:
        grpc_load.run_h2load(
            grpc_load.ensure_h2load(),
            address=grpc_app.address,
            api_key="not.a-key",
            scenario="user_id",
            keys=["00000000-0000-4000-8000-000000000000"],
            duration=1.0,
            connections=1,
            threads=1,
        )
    assert failed.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_calls_the_server_failed_count_as_errors():
    result = {"calls": 100, "errors": 0, "error_codes": {}, "connections": 4}
    checked = grpc_load.verify_h2load(
        dict(result), Counter({"OK": 10}), Counter({"OK": 113, "UNAUTHENTICATED": 0, "NOT_FOUND": 5})
    )
    assert checked["errors"] == 5
    assert checked["error_codes"] == {"NOT_FOUND": 5}
    # h2load saw more answers than the server counted OK: the difference is unverified, so failed.
    short = grpc_load.verify_h2load(dict(result), Counter({"OK": 10}), Counter({"OK": 61}))
    assert short["errors"] == 50
    assert short["error_codes"] == {"unverified": -50}
