"""The embedded default boots with nothing configured, and production refuses unsafe settings."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG_VARIABLES = (
    "DATABASE_URL",
    "DB_HOST",
    "DB_READ_HOST",
    "DATABASE_REPLICA_URLS",
    "REDIS_URL",
    "SECRET_KEY",
    "DEBUG",
)


def _manage(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES and not k.startswith("QUESTDB_")}
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def fresh_checkout(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("checkout") / "questdb"
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(".venv", ".git", "db.sqlite3", "var", "__pycache__"))
    return target


def test_the_embedded_default_checks_migrates_and_serves_the_admin(fresh_checkout):
    assert _manage("check", cwd=fresh_checkout).returncode == 0
    migrated = _manage("migrate", "--noinput", cwd=fresh_checkout)
    assert migrated.returncode == 0, migrated.stderr
    assert (fresh_checkout / "db.sqlite3").exists()
    created = _manage(
        "createsuperuser",
        "--noinput",
        "--username=staff",
        "--email=staff@example.com",
        cwd=fresh_checkout,
        DJANGO_SUPERUSER_PASSWORD="a-long-staff-password",
    )
    assert created.returncode == 0, created.stderr
    probe = (
        "from django.test import Client; c = Client();"
        "assert c.login(username='staff', password='a-long-staff-password');"
        "print(c.get('/admin/characters/character/').status_code, c.get('/healthz').status_code)"
    )
    shown = _manage("shell", "-c", probe, cwd=fresh_checkout)
    assert shown.stdout.split()[-2:] == ["200", "200"], shown.stderr


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage("check", QUESTDB_ENV="production")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_to_start_with_debug_on():
    result = _manage("check", QUESTDB_ENV="production", SECRET_KEY="k" * 64, DEBUG="true")
    assert result.returncode != 0
    assert "DEBUG" in result.stderr


def test_production_passes_the_deploy_checks():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level=WARNING",
        QUESTDB_ENV="production",
        SECRET_KEY="questdb-" + "x1y2z3" * 10,
        ALLOWED_HOSTS="questdb.internal",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
