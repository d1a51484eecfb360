"""The image's entry point runs the gRPC server: `docker/entrypoint.sh grpc`."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_entrypoint_grpc_migrates_then_serves_and_stops_on_sigterm(tmp_path):
    database, port = tmp_path / "questdb.sqlite3", free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DB_READ_HOST", "REDIS_URL")},
        "DATABASE_URL": f"sqlite:///{database}",
        "GRPC_LISTEN_ADDR": "127.0.0.1",
        "GRPC_PORT": str(port),
        "GRPC_METRICS_PORT": "0",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    process = subprocess.Popen(
        [str(ROOT / "docker" / "entrypoint.sh"), "grpc"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        deadline, status = time.monotonic() + 60, None
        while status != health_pb2.HealthCheckResponse.SERVING and time.monotonic() < deadline:
            with contextlib.suppress(grpc.RpcError):
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
            time.sleep(0.2)
        assert status == health_pb2.HealthCheckResponse.SERVING
        with sqlite3.connect(database) as connection:
            assert connection.execute("SELECT count(*) FROM django_migrations").fetchone()[0] >= 10
        process.send_signal(signal.SIGTERM)  # the server is the entry point's own process (exec)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_compose_runs_the_grpc_service_from_the_same_image():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    grpc_service = services["grpc"]
    assert grpc_service["image"] == services["app"]["image"]
    assert grpc_service["command"] == ["grpc"]
    assert "grpc_health" in " ".join(grpc_service["healthcheck"]["test"])
