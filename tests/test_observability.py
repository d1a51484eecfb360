import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from questdb.observability import JsonFormatter
from sessions_app.models import Session

pytestmark = pytest.mark.django_db


def test_the_request_id_is_taken_from_the_caller_or_generated(api):
    assert api.get("/healthz", HTTP_X_REQUEST_ID="trace-42")["X-Request-ID"] == "trace-42"
    generated = api.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert generated != "bad id\nwith newline"
    assert len(generated) >= 20
    assert api.get("/healthz")["X-Request-ID"] != generated


def test_request_logs_are_json_with_id_key_name_status_and_duration_and_no_secrets(api, write_key, make_user, caplog):
    session = Session.objects.create(
        user=make_user(), token="log-secret", expires_at=timezone.now() + timedelta(hours=1)
    )
    caplog.set_level(logging.INFO, logger="questdb.request")
    api.post(
        "/api/v1/sessions/lookup/", {"token": "log-secret"}, content_type="application/json", HTTP_X_REQUEST_ID="r-1"
    )
    record = next(r for r in caplog.records if r.name == "questdb.request")
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "r-1"
    assert line["api_key"] == "character-server"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["path"] == "/api/v1/sessions/lookup/"
    everything = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "log-secret" not in everything
    assert write_key not in everything
    assert str(session.id)  # the session id may appear; the token never does


def test_metrics_need_no_key_and_cover_requests_queries_cache_and_pools(api, client, make_user):
    api.get(f"/api/v1/users/{make_user().id}/")
    body = client.get("/metrics").content.decode()
    assert (
        'questdb_http_request_duration_seconds_bucket{le="0.005",method="GET",route="user-detail",status="200"}' in body
    )
    assert 'django_db_execute_total{alias="default",vendor="postgresql"}' in body
    assert "questdb_cache_events_total" in body
    assert 'questdb_db_pool_connections{alias="default",state="open"}' in body


def test_metrics_can_be_restricted_to_some_addresses(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.5"]
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 200


def test_made_up_http_methods_do_not_grow_the_metrics(client):
    def series() -> set[str]:
        return {line.split(" ")[0] for line in client.get("/metrics").content.decode().splitlines() if line[:1] != "#"}

    client.generic("GET", "/healthz")
    client.generic("ABCDEFGHIJ", "/healthz")  # the "other" series exist from here on
    client.generic("ABCDEFGHIJ", "/no/such/path")
    before = series()
    for number in range(500):
        client.generic(f"M{number:04d}X", "/healthz")
        client.generic(f"Q{number:04d}", f"/no/such/path/{number}")
    after = series()
    assert after - before == set()
    assert not any("M0001X" in name or "/no/such" in name for name in after)


def test_metrics_written_after_a_fork_go_to_the_childs_own_file(tmp_path):
    """The process id the multiprocess metrics use is kept by a fork hook, not asked for on each update."""
    import os
    import subprocess
    import sys

    script = f"""
import os
os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "questdb.config.settings")
import django
django.setup()
from prometheus_client import Counter
from questdb import observability
from prometheus_client import values
assert values.ValueClass is not None and getattr(values.ValueClass, "_multiprocess", False)
forked = Counter("questdb_test_forked", "A counter written by two processes.")
forked.inc()
child = os.fork()
if child == 0:
    forked.inc(5)
    os._exit(0)
os.waitpid(child, 0)
print(os.getpid(), child)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=os.getcwd(), check=True
    )
    parent, child = done.stdout.split()
    from prometheus_client.mmap_dict import MmapedDict

    def total(pid: str) -> float:
        mapped = MmapedDict(str(tmp_path / f"counter_{pid}.db"))
        try:
            return sum(value for key, value, _ in mapped.read_all_values() if "questdb_test_forked" in key)
        finally:
            mapped.close()

    assert total(parent) == 1
    assert total(child) == 5  # reset after the fork: the child's file holds only its own count
