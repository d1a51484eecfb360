"""bench.grpc_load drives every gRPC benchmark scenario from separate processes (a one-second smoke)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bench import grpc_load
from characters.models import Character
from sessions_app.models import Session

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


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
