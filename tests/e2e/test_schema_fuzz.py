"""schemathesis against the served OpenAPI schema, with a write key, on a seeded database, over real HTTP."""

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from characters.models import Character
from sessions_app.models import Session
from tests.e2e.conftest import gunicorn

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.slow]

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(write_key, make_user, tmp_path):
    for number in range(3):
        owner = make_user()
        Character.objects.create(user=owner, name=f"Seeded{number}")
        Session.objects.create(user=owner, token=f"seed-{number}", expires_at=timezone.now() + timedelta(days=1))
    binary = shutil.which("schemathesis") or str(Path(__import__("sys").executable).parent / "schemathesis")
    with gunicorn(DB_READ_HOST="", API_THROTTLE_RATE="1000000/min", GUNICORN_THREADS="4") as base:
        assert requests.get(f"{base}/api/schema/", timeout=10).status_code == 200
        result = subprocess.run(
            [
                binary,
                "run",
                f"{base}/api/schema/",
                "--url",
                base,
                "--header",
                f"Authorization: Api-Key {write_key}",
                "--checks",
                CHECKS,
                "--max-examples",
                "40",
                "--phases",
                "examples,coverage,fuzzing",
                "--seed",
                "1",
                "--report-dir",
                str(tmp_path),
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,  # a hard wall clock: the run takes about a minute here
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
