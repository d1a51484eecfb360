"""Start and stop a benchmarked gunicorn server, and talk to it from Python (readiness, warm-up, checks)."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench import cores
from bench.scenarios import Request

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "bench" / "gunicorn_conf.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL if it is not gone within 30 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class Server:
    """One gunicorn master with the benchmark's settings, on 127.0.0.1:`port`."""

    def __init__(self, name: str, wsgi_app: str, env: dict, log_path: Path) -> None:
        self.name, self.wsgi_app, self.env, self.log_path = name, wsgi_app, env, log_path
        self.port = int(env["GUNICORN_BIND"].rsplit(":", 1)[1])
        self.process: subprocess.Popen | None = None

    def start(self, ready_path: str, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        gunicorn = Path(sys.executable).parent / "gunicorn"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(gunicorn), "-c", str(GUNICORN_CONF), self.wsgi_app],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                self.request(Request("GET", ready_path), timeout=2)
                if len(self.worker_pids()) >= 1:
                    return  # any answer: the pre-flight requests check the content
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on port {self.port} within {timeout:.0f}s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        return cores.children(self.process.pid) if self.process is not None else []

    def stop(self) -> None:
        stop_process(self.process)

    def request(self, req: Request, *, api_key: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(req.method, req.path, body=req.body, headers=_headers(api_key, req))
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def run_requests(self, requests: list[Request], *, api_key: str, concurrency: int = 8) -> Counter:
        """Send every request once over `concurrency` keep-alive connections; the status codes seen."""
        statuses: Counter = Counter()
        lock = threading.Lock()
        chunks = [requests[i::concurrency] for i in range(concurrency)]

        def worker(chunk: list[Request]) -> None:
            seen: Counter = Counter()
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                for req in chunk:
                    try:
                        conn.request(req.method, req.path, body=req.body, headers=_headers(api_key, req))
                        response = conn.getresponse()
                        response.read()
                        seen[response.status] += 1
                    except (OSError, http.client.HTTPException):
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                        seen["error"] += 1
            finally:
                conn.close()
            with lock:
                statuses.update(seen)

        threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks if chunk]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return statuses

    def json(self, path: str) -> dict:
        status, body = self.request(Request("GET", path))
        if status >= 500:
            raise RuntimeError(f"{self.name} {path} answered {status}")
        return json.loads(body)


def _headers(api_key: str | None, req: Request) -> dict:
    headers = {}
    if api_key:
        headers["Authorization"] = f"Api-Key {api_key}"
    if req.body is not None:
        headers["Content-Type"] = "application/json"
    return headers


def clean_environment() -> dict:
    """This process's environment without any questdb, Django or gunicorn setting that could leak in."""
    prefixes = (
        "DB_",
        "DATABASE_",
        "REDIS_",
        "CACHE_",
        "GUNICORN_",
        "GRPC_",
        "API_",
        "SECURE_",
        "QUESTDB_",
        "LOG_",
        "PROMETHEUS_",
        "DJANGO_",
        "MAX_",
        "SESSION_",
        "CHARACTER_",
        "METRICS_",
        "BACKUP_",
    )
    names = {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "STATIC_ROOT"}
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k not in names}


class GrpcServer:
    """`manage.py grpcserver` (through bench.grpc_server, which adds the statement counter) on 127.0.0.1:GRPC_PORT:
    its supervisor and GRPC_PROCESSES worker processes."""

    def __init__(self, env: dict, log_path: Path) -> None:
        self.name, self.env, self.log_path = "grpc", env, log_path
        self.port = int(env["GRPC_PORT"])
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.grpc_server"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"grpc exited with {self.process.returncode}; see {self.log_path}")
                try:
                    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"grpc was not SERVING on {self.address} within {timeout:.0f}s; see {self.log_path}")

    def pids(self) -> list[int]:
        """The supervisor and its worker processes."""
        return [self.process.pid, *self.worker_pids()] if self.process is not None else []

    worker_pids = Server.worker_pids

    def stop(self) -> None:
        stop_process(self.process)
