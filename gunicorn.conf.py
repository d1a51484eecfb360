"""gunicorn settings for questdb, read from the environment (defaults in the README).

Worker model: `gthread`. Each worker process holds one psycopg pool per database
alias, opened lazily after the fork; its threads share that pool. A thread holds
at most one connection per alias at a time, so a pool of DB_MAX_CONNECTIONS never
waits while GUNICORN_THREADS <= DB_MAX_CONNECTIONS. Server connections per alias:
at most WEB_CONCURRENCY x DB_MAX_CONNECTIONS, plus one per process for the replica
monitor. See "Connection budget" in the README.
"""

import gc
import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle workers now and then so slow leaks cannot accumulate; jitter avoids restarting all at once.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
# Do not import the app before forking: pools and threads must start in each worker.
preload_app = False
accesslog = None  # questdb logs each request itself, as JSON with the request id
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket (for gunicornc) defaults to one shared path per user, so a second
# instance on the host would replace the first one's and remove it on exit. Off unless
# GUNICORN_CONTROL_SOCKET names a path for this instance.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

# Prometheus metrics from every worker are merged through files in this directory.
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"questdb-metrics-{os.getpid()}")
)


def on_starting(server) -> None:
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker) -> None:
    # The app is loaded: the collector need not scan its long-lived objects again, which keeps
    # full collections, and the requests they pause, short.
    gc.freeze()
