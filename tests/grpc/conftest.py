"""A real `manage.py grpcserver` on loopback, against the test database on the primary and standby."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from django.db import connections
from grpc_health.v1 import health_pb2, health_pb2_grpc

from questdb.v1 import characters_pb2_grpc, sessions_pb2_grpc, users_pb2_grpc
from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    primary = connections["default"].settings_dict
    return f"postgres://{primary['USER']}@{primary['HOST']}:{primary['PORT']}/{primary['NAME']}"


class Server:
    def __init__(self, process: subprocess.Popen, address: str, metrics_port: int) -> None:
        self.process, self.address, self.metrics_port = process, address, metrics_port
        self.channel = grpc.insecure_channel(address)
        self.users = users_pb2_grpc.UserServiceStub(self.channel)
        self.characters = characters_pb2_grpc.CharacterDbServiceStub(self.channel)
        self.sessions = sessions_pb2_grpc.SessionServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def health_status(self, service: str = "") -> int:
        return self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status


@contextlib.contextmanager
def grpc_server(*, wait_serving: bool = True, **env: str):
    """Start `manage.py grpcserver` with the test settings (plus `env`); yields a Server with stubs."""
    port, metrics_port = free_port(), free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "GRPC_LISTEN_ADDR": "127.0.0.1",
        "GRPC_PORT": str(port),
        "GRPC_METRICS_PORT": str(metrics_port),
        "GRPC_MAX_WORKERS": "8",
        "GRPC_PROCESSES": "1",  # as the gunicorn fixture runs one worker; tests of several processes say so
        "GRPC_HEALTH_CHECK_INTERVAL": "0.3",
        "GRPC_SHUTDOWN_GRACE": "5",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        **env,
    }
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"questdb-grpc-{port}.log", "w+")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "manage.py", "grpcserver"], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    server = Server(process, f"127.0.0.1:{port}", metrics_port)
    server.log = log
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(grpc.RpcError):
                status = server.health_status()
                if not wait_serving or status == health_pb2.HealthCheckResponse.SERVING:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"grpcserver did not start: {log.read()}")
            time.sleep(0.1)
        yield server
    finally:
        server.channel.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def worker_pids(server: Server) -> set[int]:
    """The supervisor's worker processes (their parent is the server process)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == server.process.pid:
                    pids.add(int(entry.name))
    return pids


def log_text(server: Server) -> str:
    server.log.flush()
    server.log.seek(0)
    return server.log.read()


@pytest.fixture(scope="session")
def grpc_app(django_db_setup, django_db_blocker):
    """One server for the whole session (tests create their own rows and keys).

    Its readiness check runs once at start, so the query counters see only the RPCs' own queries."""
    with grpc_server(GRPC_HEALTH_CHECK_INTERVAL="3600") as server:
        yield server


@pytest.fixture
def write_md(write_key):
    return (("authorization", f"Api-Key {write_key}"),)


@pytest.fixture
def read_md(read_key):
    return (("authorization", f"Api-Key {read_key}"),)
