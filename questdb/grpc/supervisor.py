"""`manage.py grpcserver`: GRPC_PROCESSES worker processes serving one port, supervised by this process.

One Python process serves its RPCs behind one GIL; like gunicorn's WEB_CONCURRENCY workers, several
processes use several cores. This follows the gRPC examples' multiprocessing pattern: the parent creates
no gRPC server or channel and opens no database or Redis connection (Django's pools, the replica monitor
and the Redis client open lazily, in each worker, after the fork). Each worker builds its own
`grpc.server` bound to the same address with SO_REUSEPORT, and the kernel spreads incoming connections
over the workers. A gRPC client keeps one connection, so all of one channel's calls go to one worker;
many callers, or a balancer holding several connections, spread over all of them.

- **The port**: before forking, the parent binds the address once without SO_REUSEPORT and closes it,
  so a port that another program or another grpcserver holds fails the start (exit 1) instead of being
  shared, and `GRPC_PORT=0` picks the one free port every worker then binds.
- **SIGTERM or SIGINT** to the parent is passed to every worker; each reports NOT_SERVING, takes no new
  RPCs and lets in-flight ones finish for up to GRPC_SHUTDOWN_GRACE seconds. The parent exits 0 once
  all have exited cleanly (1 if one did not), and kills a worker still running 5 s after the grace. A
  worker whose parent is gone (killed without the chance to pass SIGTERM on) stops the same way.
- **A worker that dies** on its own after it started serving is replaced by a new one, as gunicorn
  replaces its workers (logged as an error). A worker that dies before it started serving (it could not
  bind, a setting is broken) is not retried in a loop: the parent stops the others and exits 1, for the
  orchestrator to see.
- **Metrics**: the workers write their Prometheus metrics to files in PROMETHEUS_MULTIPROC_DIR (a fresh
  temporary directory when it is unset, as gunicorn.conf.py does) and the parent serves their sum on
  GRPC_METRICS_PORT, from its own loop (it runs no threads, so forking a replacement is safe).
"""

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings

from questdb.observability import multiprocess_value_class

logger = logging.getLogger(__name__)

KILL_AFTER_GRACE = 5.0  # seconds past GRPC_SHUTDOWN_GRACE before a worker still running is killed
LOOP_SECONDS = 0.2


def multiprocess_metrics_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR, set to a fresh temporary directory if it is unset.

    prometheus_client picks its value class when it is imported, which Django's setup has done by now:
    point it at the directory here, before any worker creates a labelled metric's series."""
    from prometheus_client import values

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
    else:
        path = tempfile.mkdtemp(prefix=f"questdb-grpc-metrics-{os.getpid()}-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = multiprocess_value_class()
    return path


def reserve_port(host: str, port: int) -> int:
    """Bind host:port once without SO_REUSEPORT (fails if anything listens there); the port bound."""
    host = host.strip("[]")
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.bind(address)
        return probe.getsockname()[1]


class _QuietHandler(WSGIRequestHandler):
    timeout = 5  # a scrape that stalls cannot hold the supervisor's loop for long

    def log_message(self, format, *args) -> None:
        pass


class _Worker:
    def __init__(self, pid: int, ready_fd: int) -> None:
        self.pid, self.ready_fd, self.started = pid, ready_fd, time.monotonic()

    def served(self) -> bool:
        """Whether it reported serving (asked once it has exited); closes the pipe."""
        try:
            return os.read(self.ready_fd, 1) == b"1"
        except OSError:
            return False
        finally:
            os.close(self.ready_fd)


class Supervisor:
    def __init__(self) -> None:
        self.processes = settings.GRPC_PROCESSES
        self.workers: dict[int, _Worker] = {}
        self.stopping = threading.Event()  # set by SIGTERM/SIGINT; in a worker, its own copy is its stop signal
        self.metrics_server: WSGIServer | None = None
        self.metrics_dir, self.own_metrics_dir = "", False
        self.failed = False  # a worker could not start: stop all, exit 1
        self.unclean = False  # a worker did not stop cleanly when told to

    # -- the parent ------------------------------------------------------------------
    def run(self) -> int:
        if self.processes < 1:
            logger.error("GRPC_PROCESSES must be at least 1")
            return 1
        try:
            port = reserve_port(settings.GRPC_LISTEN_ADDR, settings.GRPC_PORT)
        except OSError as error:
            logger.error("cannot listen on %s:%s: %s", settings.GRPC_LISTEN_ADDR, settings.GRPC_PORT, error)
            return 1
        self.address = f"{settings.GRPC_LISTEN_ADDR}:{port}"
        self.own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.metrics_dir = multiprocess_metrics_dir()
        if settings.GRPC_METRICS_PORT:
            try:
                self.metrics_server = self._metrics_server()  # before the workers: a busy port fails alone
            except OSError as error:
                logger.error("cannot serve metrics on port %s: %s", settings.GRPC_METRICS_PORT, error)
                return 1
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stopping.set())
        for _ in range(self.processes):
            self.spawn()
        logger.info(
            "questdb gRPC listening on %s (%d processes x %d threads)",
            self.address,
            self.processes,
            settings.GRPC_MAX_WORKERS,
        )
        try:
            while not self.stopping.is_set() and not self.failed:
                self._wait_a_moment()
                self.reap()
        finally:
            self.stop()
            if self.metrics_server is not None:
                self.metrics_server.server_close()
            if self.own_metrics_dir:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
        return 1 if self.failed or self.unclean else 0

    def _wait_a_moment(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.handle_request()  # waits up to its timeout for a scrape
        else:
            time.sleep(LOOP_SECONDS)

    def _metrics_server(self) -> WSGIServer:
        from prometheus_client import CollectorRegistry, make_wsgi_app, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        server = make_server(
            settings.GRPC_LISTEN_ADDR, settings.GRPC_METRICS_PORT, make_wsgi_app(registry), handler_class=_QuietHandler
        )
        server.timeout = LOOP_SECONDS
        return server

    def spawn(self) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_fd)
            self._become_worker(write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.workers[pid] = _Worker(pid, read_fd)

    def reap(self) -> None:
        """Collect the workers that exited: replace one that had served, fail on one that never did."""
        while self.workers:
            exited = self._exited()
            if exited is None:
                return
            worker, code, served = exited
            if self.stopping.is_set():
                continue  # stop() waits for the rest
            if not served:
                logger.error("gRPC worker %d exited (%d) before serving: stopping", worker.pid, code)
                self.failed = True
                return
            logger.error(
                "gRPC worker %d exited (%d) after %.0fs: starting another",
                worker.pid,
                code,
                time.monotonic() - worker.started,
            )
            self.spawn()

    def _exited(self) -> tuple[_Worker, int, bool] | None:
        """A worker that has exited (reaped, its metrics forgotten), its exit status and whether it had
        served; None while all run."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if code != 0 and self.stopping.is_set():
                self.unclean = True
            self._forget_metrics(pid)
            return worker, code, worker.served()

    def stop(self) -> None:
        """SIGTERM every worker and wait for them, killing any still running past the grace."""
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + settings.GRPC_SHUTDOWN_GRACE + KILL_AFTER_GRACE
        while self.workers:
            if self._exited() is not None:
                continue
            if time.monotonic() > deadline:
                for pid in self.workers:
                    logger.error("gRPC worker %d still running past the grace: killing it", pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)
        logger.info("questdb gRPC stopped")

    def _forget_metrics(self, pid: int) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.metrics_dir)

    # -- a worker ------------------------------------------------------------------------
    def _become_worker(self, ready_fd: int) -> None:
        code = 1
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self.stopping.set())
            if self.metrics_server is not None:
                self.metrics_server.socket.close()  # the parent's; this process only serves gRPC
            for worker in self.workers.values():
                os.close(worker.ready_fd)
            # Imported only in the child: nothing of grpc's core may start before the fork.
            from questdb.grpc.server import serve_worker

            def ready() -> None:
                os.write(ready_fd, b"1")
                os.close(ready_fd)

            code = serve_worker(self.address, self.stopping, ready)
        except BaseException:
            logger.exception("gRPC worker %d failed", os.getpid())
        finally:
            logging.shutdown()
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
