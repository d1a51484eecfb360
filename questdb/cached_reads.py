"""Lookups answered straight from the lookup cache, before URL routing and DRF.

Most traffic is repeated point lookups whose answer is already in Redis. For those,
the work of DRF's dispatch (request wrapping, negotiation, URL resolution) costs more
than the lookup itself. This middleware serves such a request when, and only when:
the caller's API key is valid (the same check as the API's authentication; every
listed read is allowed to read-scoped keys), the answer is cached, the app's `serve`
function accepts it (sessions not expired, characters not past their purge time) and
the key is within its throttle. Anything else goes on to the viewsets unchanged,
which do the full work and produce every error response.

Each app lists its reads in `<app>/caching.py` as CACHED_READS.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from django.http import HttpRequest

from questdb.api.responses import json_body
from questdb.api_keys import caller_from_header
from questdb.cache import lookup_cache
from questdb.errors import DomainError
from questdb.throttling import within_rate

APPS_WITH_CACHED_READS = ("accounts", "characters", "sessions_app")


class NotServedFromCache(Exception):
    """Raised by a `serve` function when a cached record cannot answer this request as is."""


@dataclass(frozen=True)
class CachedRead:
    route: str  # the URL name the viewsets give the same endpoint (metrics and logs)
    method: str
    pattern: re.Pattern
    key: Callable  # (request, match) -> Key | None
    serve: Callable[[bytes], tuple[bytes, dict]]  # record -> body, headers


def api_path(pattern: str) -> re.Pattern:
    return re.compile(rf"^/api/v1/{pattern}$")


class CachedReadMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.reads = [read for app in APPS_WITH_CACHED_READS for read in import_module(f"{app}.caching").CACHED_READS]

    def __call__(self, request: HttpRequest):
        response = self._from_cache(request)
        return response if response is not None else self.get_response(request)

    def _from_cache(self, request: HttpRequest):
        if not lookup_cache.enabled:
            return None
        read, match = self._match(request)
        if read is None:
            return None
        caller = caller_from_header(request.META.get("HTTP_AUTHORIZATION", ""))
        key = read.key(request, match) if caller is not None else None
        record = lookup_cache.peek(key) if key is not None else None
        if record is None:
            return None
        try:
            body, headers = read.serve(record)
        except (DomainError, NotServedFromCache):
            return None
        if not within_rate(caller):
            return None  # the view answers with the 429
        request.META["questdb.caller"] = caller.name
        request.route_name = read.route
        return json_body(body, headers=headers)

    def _match(self, request: HttpRequest):
        for read in self.reads:
            if read.method == request.method:
                match = read.pattern.match(request.path_info)
                if match:
                    return read, match
        return None, None
