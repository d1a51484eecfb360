"""The numbers on the staff console's front page: replica lag, cache hit rate, recent changes, and what the apps
add (pending purges: questdb.console.registry)."""

import os

from django.conf import settings
from django.db import connection
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from questdb.console import registry
from questdb.db import replicas

HIT_EVENTS = ("hit", "hit_after_wait")


def replica_lag() -> list[dict]:
    report = replicas.monitor.report() if settings.REPLICA_ALIASES else {}
    return [{"alias": alias, **state} for alias, state in sorted(report.items())]


def cache_events() -> dict[str, float]:
    """Lookup cache events by kind, summed over key families (and gunicorn workers, when they share a directory)."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    totals: dict[str, float] = {}
    for metric in registry.collect():
        if metric.name != "questdb_cache_events":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                event = sample.labels.get("event", "")
                totals[event] = totals.get(event, 0.0) + sample.value
    return totals


def cache_hit_rate(events: dict[str, float]) -> float | None:
    hits = sum(events.get(name, 0.0) for name in HIT_EVENTS)
    lookups = hits + events.get("miss", 0.0)
    return hits / lookups if lookups else None


def summary() -> dict:
    from pghistory.models import MiddlewareEvents

    events = cache_events()
    recent = MiddlewareEvents.objects.filter(pgh_context__user__isnull=False).order_by("-pgh_created_at")[:10]
    if connection.vendor != "postgresql":
        recent = []  # the audit trail is kept by PostgreSQL triggers
    return {
        "replicas": replica_lag(),
        "max_lag": settings.DB_REPLICA_MAX_LAG,
        "cache_hit_rate": cache_hit_rate(events),
        "cache_lookups": int(sum(events.get(name, 0.0) for name in (*HIT_EVENTS, "miss"))),
        "recent_changes": list(recent),
        **registry.dashboard_figures(),
    }
