"""Structured request logs, request metrics and the metrics endpoint.

Each request gets an id (the caller's `X-Request-ID` when it is sane, else a new
one), returned in the response and attached to the request's log line with the
calling service's key name, status and duration. Bodies, headers and tokens are
never logged.
"""

import itertools
import json
import logging
import os
import re
import time
import uuid

from django.db import connections
from prometheus_client import Gauge, Histogram, values


class _ProcessId:
    """This process's id, kept current by a fork hook rather than asked of the kernel on every metric update."""

    value = os.getpid()

    @classmethod
    def refresh(cls) -> None:
        cls.value = os.getpid()

    @classmethod
    def get(cls) -> int:
        return cls.value


os.register_at_fork(after_in_child=_ProcessId.refresh)


def multiprocess_value_class():
    """prometheus_client's multiprocess value class, told the process id by `_ProcessId`.

    Its default calls os.getpid() on every update to notice a fork; a cache hit updates several
    metrics, and that call was the hit path's largest own cost in a profile.
    """
    return values.MultiProcessValue(process_identifier=_ProcessId.get)


# prometheus_client picked its value class at import; Django's logging setup imports this module before any
# app defines a metric (the JSON formatter lives here), so every series gets the cheaper one.
if getattr(values.ValueClass, "_multiprocess", False):
    values.ValueClass = multiprocess_value_class()

request_logger = logging.getLogger("questdb.request")
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


REQUEST_DURATION = Histogram(
    "questdb_http_request_duration_seconds",
    "Request latency by route (URL name), method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)


# Label values come from a fixed set: a method outside it counts as "other", so made-up methods
# (any token is a valid HTTP method) cannot grow /metrics. Routes are URL names from the resolver.
# "GRPC" is the gRPC server's requests, which share the request metric and log line.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "GRPC"})


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


_request_ids = itertools.count()
_process_tag = uuid.uuid4().hex[:12]


def new_request_id() -> str:
    """Unique across processes and restarts, without a system call per request (uuid4 makes one)."""
    return f"{_process_tag}{next(_request_ids):08x}"


def request_id_for(incoming: str) -> str:
    """The caller's `X-Request-ID` when it is sane, else a new one."""
    return incoming if _SANE_REQUEST_ID.match(incoming) else new_request_id()


def record_request(
    *, method: str, path: str, route: str, status: int, duration: float, request_id: str, caller: str | None
) -> None:
    """The request's metrics and log line; shared by Django's middleware and the cached-read fast path."""
    REQUEST_DURATION.labels(route, method_label(method), status).observe(duration)
    if request_logger.isEnabledFor(logging.INFO):
        request_logger.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration * 1000, 2),
                "api_key": caller,
            },
        )


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        request_id = request_id_for(request.META.get("HTTP_X_REQUEST_ID", ""))
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        match = getattr(request, "resolver_match", None)
        record_request(
            method=request.method,
            path=request.path,
            route=match.view_name if match else "unmatched",
            status=response.status_code,
            duration=time.perf_counter() - started,
            request_id=request_id,
            caller=request.META.get("questdb.caller"),
        )
        return response


POOL_CONNECTIONS = Gauge(
    "questdb_db_pool_connections",
    "Connections in this process's pool per database alias: open, idle, and requests waiting for one.",
    ["alias", "state"],
    multiprocess_mode="liveall",
)


def refresh_pool_gauges() -> None:
    for alias in connections:
        pool = getattr(connections[alias], "_connection_pools", {}).get(alias)
        if pool is None:
            continue
        stats = pool.get_stats()
        POOL_CONNECTIONS.labels(alias, "open").set(stats.get("pool_size", 0))
        POOL_CONNECTIONS.labels(alias, "idle").set(stats.get("pool_available", 0))
        POOL_CONNECTIONS.labels(alias, "waiting").set(stats.get("requests_waiting", 0))
