"""One gRPC worker process: a thread pool (Django's ORM is synchronous), questdb's services, health, reflection.

`manage.py grpcserver` runs GRPC_PROCESSES of these (questdb/grpc/supervisor.py), each bound to the same
address with SO_REUSEPORT. Health (grpc.health.v1) reports SERVING, for the whole server and for each service,
only while the readiness check that /readyz runs finds the primary reachable; it is re-checked every
GRPC_HEALTH_CHECK_INTERVAL seconds. On SIGTERM or SIGINT the server reports NOT_SERVING, stops taking
new RPCs and lets in-flight ones finish for up to GRPC_SHUTDOWN_GRACE seconds.
"""

import gc
import logging
import os
import threading
from concurrent import futures

import grpc
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from questdb.api.probes import primary_report
from questdb.grpc.interceptor import QuestdbInterceptor
from questdb.grpc.registry import services
from questdb.observability import refresh_pool_gauges

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class Server:
    def __init__(self, *, address: str, max_workers: int, reuse_port: bool = False) -> None:
        self.services = services()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            interceptors=[QuestdbInterceptor(self.services)],
            options=[
                # The supervisor's workers share the port; otherwise a second server on it fails instead.
                ("grpc.so_reuseport", int(reuse_port)),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        for service in self.services:
            service.add_to_server(service.servicer, self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [service.name for service in self.services]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server)
        self.port = self.server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen on {address}")
        self._stopping = threading.Event()
        self._set_health(False)

    def _set_health(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *(service.name for service in self.services)):
            self.health.set(name, status)

    def _watch_readiness(self) -> None:
        while not self._stopping.is_set():
            reachable = primary_report()["reachable"]
            connections[DEFAULT_DB_ALIAS].close()  # back to the pool between checks
            refresh_pool_gauges()
            if not self._stopping.is_set():
                self._set_health(reachable)
            self._stopping.wait(settings.GRPC_HEALTH_CHECK_INTERVAL)

    def start(self) -> None:
        self.server.start()
        threading.Thread(target=self._watch_readiness, name="grpc-readiness", daemon=True).start()

    def stop(self, grace: float) -> None:
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def serve_worker(address: str, stop: threading.Event, ready) -> int:
    """Serve in this (freshly forked) process until `stop` is set, then shut down gracefully.

    `ready()` is called once the server listens. Returns the exit status."""
    server = Server(address=address, max_workers=settings.GRPC_MAX_WORKERS, reuse_port=True)
    server.start()
    gc.freeze()  # the loaded app: full collections need not scan it again (as gunicorn.conf.py does)
    ready()
    logger.info("questdb gRPC worker %d serving on %s (%d threads)", os.getpid(), address, settings.GRPC_MAX_WORKERS)
    parent = os.getppid()
    while not stop.wait(0.5):
        if os.getppid() != parent:  # the supervisor is gone: nobody would stop or replace this worker
            logger.error("questdb gRPC worker %d: the supervisor is gone", os.getpid())
            break
    logger.info("questdb gRPC worker %d stopping: in-flight RPCs get %.0fs", os.getpid(), settings.GRPC_SHUTDOWN_GRACE)
    server.stop(settings.GRPC_SHUTDOWN_GRACE)
    logger.info("questdb gRPC worker %d stopped", os.getpid())
    return 0
