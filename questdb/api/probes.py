"""`/healthz`: the process answers. `/readyz`: the primary answers, how each replica is doing, and the cache's trust."""

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpResponseForbidden, JsonResponse
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView
from prometheus_client import generate_latest

from questdb.cache import invalidation
from questdb.cache.store import lookup_cache
from questdb.db import replicas
from questdb.observability import refresh_pool_gauges


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def primary_report() -> dict:
    """Whether the primary answers a query now; readiness reports failures, it never raises them."""
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"role": "primary", "reachable": True, "taking_reads": True}
    except Exception as error:
        return {"role": "primary", "reachable": False, "error": error.__class__.__name__}


@require_GET
def readyz(request):
    databases = {DEFAULT_DB_ALIAS: primary_report()}
    replica_reports = replicas.monitor.report()
    for alias, report in replica_reports.items():
        databases[alias] = {"role": "replica", **report}
    if replica_reports and not any(r["taking_reads"] for r in replica_reports.values()):
        databases[DEFAULT_DB_ALIAS]["note"] = "no replica is taking reads; the primary serves them"
    ready = databases[DEFAULT_DB_ALIAS]["reachable"]
    body = {"status": "ready" if ready else "unavailable", "databases": databases}
    if lookup_cache.enabled:
        # Reported, never a 503: an untrusted cache means lookups are answered from the database.
        body["cache"] = cache_report()
    return JsonResponse(body, status=200 if ready else 503)


def cache_report() -> dict:
    client = lookup_cache.client()
    if client is None:
        return {"reachable": False, "trusted": False, "reason": "redis unavailable; lookups read the database"}
    try:
        return {"reachable": True, **invalidation.status(client)}
    except Exception as error:  # readiness reports failures, it never raises them
        return {"reachable": False, "trusted": False, "error": error.__class__.__name__}


def metrics(request):
    """Prometheus metrics; no API key, optionally limited to METRICS_ALLOWED_IPS."""
    allowed = settings.METRICS_ALLOWED_IPS
    if allowed and request.META.get("REMOTE_ADDR") not in allowed:
        return HttpResponseForbidden("metrics are not served to this address\n")
    refresh_pool_gauges()
    response = ExportToDjangoView(request)
    response.content += generate_latest(invalidation.REGISTRY)
    return response
