"""Lookups answered straight from the lookup cache, in front of Django.

Most traffic is repeated point lookups whose answer is already in Redis. For those,
Django's request cycle (request and response objects, signals, middleware, URL
resolution, DRF's dispatch) costs several times the lookup itself. `CachedReadApp`
wraps the Django WSGI application and answers such a request itself when, and only
when:
- the request is one of the reads the apps list, on an allowed host, over HTTPS if
  SECURE_SSL_REDIRECT asks for it, with a well-formed consistency token if any;
- the caller's API key is valid (the same check as the API's authentication; every
  listed read is allowed to read-scoped keys);
- the answer is cached, and the app's `serve` function accepts it (sessions not
  expired, characters not past their purge time);
- the key is within its throttle.
Anything else goes to Django unchanged, which does the full work and produces every
error response. A hit carries the same headers as Django's answer (the security
headers come from Django's own middleware), a request id, a log line and metrics.

Each app lists its reads as CACHED_READS in `<app>/api/lookups.py`; the hit path finds
them through Django's app registry, so this module names no app.
"""

import io
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from http import HTTPStatus
from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest, get_path_info
from django.http import HttpResponse, QueryDict
from django.http.request import split_domain_port, validate_host
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.http import parse_header_parameters
from django.utils.module_loading import module_has_submodule

from questdb.api.auth import caller_from
from questdb.api.batch import batch_body, batch_ids
from questdb.api.chunked import is_chunked
from questdb.api.paths import API_ROOT
from questdb.api.throttling import within_rate
from questdb.cache.batch import LookupResult
from questdb.cache.records import Payload
from questdb.cache.store import lookup_cache
from questdb.db.router import parse_lsn
from questdb.errors import DomainError, InvalidInput
from questdb.observability import record_request, request_id_for
from questdb.text import is_unsafe, parse_json

LOOKUPS_MODULE = "api.lookups"  # where an app declares its CACHED_READS
MAX_LOOKUP_BODY = 4096  # a lookup body is one small JSON object; larger ones go to Django
# Response middleware whose headers do not depend on the response: a hit gets what they would add.
FIXED_HEADER_MIDDLEWARE = (SecurityMiddleware, XFrameOptionsMiddleware)

logger = logging.getLogger(__name__)


class NotServedFromCache(Exception):
    """Raised by a `serve` function when a cached record cannot answer this request as is."""


class LookupRequest:
    """What a `key` function may read of a request: query, content type and charset, body."""

    def __init__(self, environ: dict, body: bytes = b"") -> None:
        self.environ, self.body = environ, body

    @cached_property
    def query(self) -> QueryDict:
        return QueryDict(self.environ.get("QUERY_STRING", "").encode("latin-1"))  # WSGI's latin-1 text of the bytes

    @cached_property
    def _content_type(self) -> tuple[str, dict]:
        return parse_header_parameters(self.environ.get("CONTENT_TYPE", ""))

    @property
    def content_type(self) -> str:
        return self._content_type[0]

    @property
    def charset(self) -> str:
        """The declared charset, lower-case; empty when none is declared."""
        return self._content_type[1].get("charset", "").lower()

    def json(self):
        """The JSON body as the API's parser reads it (questdb/text.py's rules); None for any body it would
        refuse or read otherwise (another content type or charset): Django answers those."""
        if self.content_type != "application/json" or self.charset not in ("", "utf-8"):
            return None
        try:
            return parse_json(self.body.decode("utf-8"))
        except (InvalidInput, UnicodeDecodeError):
            return None


@dataclass(frozen=True)
class CachedRead:
    route: str  # the URL name the viewsets give the same endpoint (metrics and logs)
    method: str
    pattern: re.Pattern
    key: Callable  # (LookupRequest, match) -> Key | None
    serve: Callable[[bytes], Payload]  # record -> body, headers

    def answer(self, request: LookupRequest, match: re.Match, *, local: bool) -> Payload | None:
        """The answer from the cache, or None for Django to give."""
        key = self.key(request, match)
        record = lookup_cache.peek(key, local=local) if key is not None else None
        if record is None:
            return None
        try:
            return self.serve(record)
        except (DomainError, NotServedFromCache):
            return None  # Django answers the error, or what the record cannot


@dataclass(frozen=True)
class CachedBatchRead:
    """A batch lookup (`POST .../batch/`, questdb/api/batch.py), answered here when every id is cached.

    Each item is what the single lookup's `serve` gives (its 404 included, such as a character past
    its purge time); an id that is malformed or not cached sends the whole request to Django.
    """

    route: str
    pattern: re.Pattern
    key_for: Callable  # id -> Key | None, the single lookup's key
    serve: Callable[[bytes], Payload]
    method: str = "POST"

    def answer(self, request: LookupRequest, match: re.Match, *, local: bool) -> Payload | None:
        ids = _batch_ids(request)
        if ids is None:
            return None
        keys = [self.key_for(raw) for raw in ids]
        if None in keys:
            return None
        records = lookup_cache.peek_many(list(dict.fromkeys(keys)), local=local)
        if len(records) < len(set(keys)):
            return None
        results = []
        for raw, key in zip(ids, keys, strict=True):
            try:
                results.append(LookupResult(raw, *self.serve(records[key])))
            except NotServedFromCache:
                return None
            except DomainError as error:
                results.append(LookupResult(raw, error=error))
        return Payload(batch_body(results), {})


def _batch_ids(request: LookupRequest) -> list | None:
    """The ids of a well-formed batch body, as the API's parser and checks read them; else None."""
    if request.environ.get("QUERY_STRING"):
        return None
    try:
        ids = batch_ids(request.json())
    except InvalidInput:
        return None
    return ids if 0 < len(ids) <= settings.API_BATCH_LIMIT else None


def api_path(pattern: str) -> re.Pattern:
    return re.compile(rf"^/{re.escape(API_ROOT)}{pattern}$")


def discover_cached_reads() -> list[CachedRead]:
    """Every installed app's CACHED_READS, in app order."""
    reads = []
    for app_config in apps.get_app_configs():
        if module_has_submodule(app_config.module, "api") and module_has_submodule(
            import_module(f"{app_config.name}.api"), "lookups"
        ):
            reads += getattr(import_module(f"{app_config.name}.{LOOKUPS_MODULE}"), "CACHED_READS", [])
    return reads


def fixed_headers(*, secure: bool) -> list[tuple[str, str]]:
    """The headers FIXED_HEADER_MIDDLEWARE adds to any response, for a plain or a secure request."""
    scheme = "https" if secure else "http"
    request = WSGIRequest({"REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO(), "wsgi.url_scheme": scheme})
    response = HttpResponse()
    bare = set(response.headers)
    for middleware in FIXED_HEADER_MIDDLEWARE:
        response = middleware(lambda request, response=response: response).process_response(request, response)
    return [(name, value) for name, value in response.items() if name not in bare]


class CachedReadApp:
    """The WSGI application: cache hits answered here, everything else passed to `django_app`."""

    def __init__(self, django_app: Callable) -> None:
        self.django_app = django_app
        self.reads = discover_cached_reads()
        self.methods = {read.method for read in self.reads}
        self.headers_for = {secure: fixed_headers(secure=secure) for secure in (False, True)}
        self.valid_hosts: set[str] = set()

    def __call__(self, environ: dict, start_response: Callable):
        started = time.perf_counter()
        try:
            answer = self._from_cache(environ)
        except Exception:
            # A fault here must not fail the request: Django can still answer it in full.
            logger.exception("cached read failed; passing the request on")
            answer = None
        if answer is None:
            return self.django_app(environ, start_response)
        read, caller, path, body, headers = answer
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                *headers.items(),
                *self.headers_for[self._is_secure(environ)],
                ("X-Request-ID", request_id),
            ],
        )
        record_request(
            method=read.method,
            path=path,
            route=read.route,
            status=HTTPStatus.OK,
            duration=time.perf_counter() - started,
            request_id=request_id,
            caller=caller.name,
        )
        return [body]

    def _from_cache(self, environ: dict):
        request = self._cacheable(environ)
        if request is None:
            return None
        read, match, path, caller, body = request
        # A caller with a consistency token is answered by Redis, not by this process's layer (strict across hosts).
        served = read.answer(LookupRequest(environ, body), match, local="HTTP_X_CONSISTENCY_TOKEN" not in environ)
        if served is None or not within_rate(caller):
            return None  # a miss, or a refusal Django answers in full (the 429 included)
        return read, caller, path, *served

    def _cacheable(self, environ: dict):
        """The read, match, path, caller and body of a lookup Django would let reach its view; else None."""
        if not lookup_cache.enabled or environ["REQUEST_METHOD"] not in self.methods:
            return None
        path = get_path_info(environ)
        read, match = self._match(environ["REQUEST_METHOD"], path)
        if read is None or is_unsafe(path) or not self._passes_django_checks(environ):
            return None
        caller = caller_from(environ)
        body = self._read_body(environ) if caller is not None else None
        return (read, match, path, caller, body) if body is not None else None

    def _match(self, method: str, path: str):
        for read in self.reads:
            if read.method == method:
                match = read.pattern.match(path)
                if match:
                    return read, match
        return None, None

    def _passes_django_checks(self, environ: dict) -> bool:
        """Requests Django would redirect or refuse before any view runs are left to Django."""
        if settings.SECURE_SSL_REDIRECT and not self._is_secure(environ):
            return False
        token = environ.get("HTTP_X_CONSISTENCY_TOKEN")
        if token is not None:
            try:
                parse_lsn(token)
            except ValueError:
                return False
        return self._host_allowed(environ)

    def _host_allowed(self, environ: dict) -> bool:
        if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
            return False
        host = environ.get("HTTP_HOST", "")
        if host in self.valid_hosts:
            return True
        domain, _ = split_domain_port(host)
        if not (domain and validate_host(domain, settings.ALLOWED_HOSTS)):
            return False
        if len(self.valid_hosts) < 100:  # bounded, whatever hosts '*' lets in
            self.valid_hosts.add(host)
        return True

    @staticmethod
    def _is_secure(environ: dict) -> bool:
        if settings.SECURE_PROXY_SSL_HEADER:
            header, secure_value = settings.SECURE_PROXY_SSL_HEADER
            if header in environ:
                return environ[header].split(",", 1)[0].strip() == secure_value
        return environ.get("wsgi.url_scheme") == "https"

    @staticmethod
    def _read_body(environ: dict) -> bytes | None:
        """The request body, left readable for Django; None when it is too large to be a lookup.

        A chunked body is made whole by questdb.api.chunked before this runs; one that was not
        (the app served without that layer) goes to Django rather than be read as empty.
        """
        if is_chunked(environ):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if length <= 0:
            return b""
        if length > MAX_LOOKUP_BODY:
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        return body
