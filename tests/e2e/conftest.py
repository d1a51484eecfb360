"""A real gunicorn serving questdb over real HTTP, against the test database on the primary and standby."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connections

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(base: str, process: subprocess.Popen, *, name: str, timeout: float) -> None:
    """Wait until `base`/healthz answers 200; fail with the server's stderr if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start: {process.stderr.read() if process.stderr else ''}")
        time.sleep(0.1)


@contextlib.contextmanager
def gunicorn(**env: str):
    """Serve the test database with the project's gunicorn.conf.py; yields the base URL."""
    port = free_port()
    primary = connections["default"].settings_dict
    database_url = f"postgres://{primary['USER']}@{primary['HOST']}:{primary['PORT']}/{primary['NAME']}"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "LOG_LEVEL": "WARNING",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "questdb.config.wsgi"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, name="gunicorn", timeout=30)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def http_session(write_key) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Api-Key {write_key}"
    return session
