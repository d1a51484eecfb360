"""The numbers on the staff console's front page: replica lag, cache hit rate, pending purges, recent changes."""

import os

from django.conf import settings
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

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

    from characters.models import Character

    events = cache_events()
    pending = Character.objects.pending_deletion()
    recent = MiddlewareEvents.objects.filter(pgh_context__user__isnull=False).order_by("-pgh_created_at")[:10]
    if connection.vendor != "postgresql":
        recent = []  # the audit trail is kept by PostgreSQL triggers
    return {
        "replicas": replica_lag(),
        "max_lag": settings.DB_REPLICA_MAX_LAG,
        "cache_hit_rate": cache_hit_rate(events),
        "cache_lookups": int(sum(events.get(name, 0.0) for name in (*HIT_EVENTS, "miss"))),
        "pending_purges": pending.count(),
        "next_purge": pending.order_by("purge_at").values_list("purge_at", flat=True).first(),
        "due_now": Character.objects.due_for_purge(timezone.now()).count(),
        "recent_changes": list(recent),
    }
