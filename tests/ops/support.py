"""Helpers shared by the operations tests: they talk to PostgreSQL with the psql client, as operators do."""

import os
import subprocess
from urllib.parse import urlsplit

import pytest


def require(condition: bool, reason: str) -> None:
    """A missing prerequisite is a failure: `make test` installs everything these tests need."""
    if not condition:
        pytest.fail(reason)


def server_url() -> str:
    """The PostgreSQL primary of DATABASE_URL, without a database name."""
    url = urlsplit(os.environ.get("DATABASE_URL", ""))
    require(url.scheme in {"postgres", "postgresql"}, "needs DATABASE_URL pointing at the PostgreSQL primary")
    return f"postgres://{url.username or 'postgres'}@{url.hostname}:{url.port or 5432}"


def psql(sql: str, database: str = "postgres", *, timeout: float = 120) -> str:
    result = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", f"{server_url()}/{database}", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.stdout.strip()
