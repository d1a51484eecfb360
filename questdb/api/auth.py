"""Per-service API keys: `Authorization: Api-Key <key>`, scoped `read` or `write`.

Hashing, storage and the admin come from djangorestframework-api-key. The check
runs on every request, so verdicts are cached in-process for API_KEY_CACHE_SECONDS
(a revoked key stops working within that time) and a cache hit costs no query.
"""

import hashlib
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

from cachetools import TLRUCache
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from rest_framework import authentication, exceptions, permissions
from rest_framework_api_key.permissions import KeyParser

from questdb.models import Scope, ServiceAPIKey

KEYWORD = "Api-Key"
MAX_CACHED_VERDICTS = 10_000
MAX_KEY_LENGTH = 200  # longer is no key of ours; never hash it


@dataclass(frozen=True)
class Caller:
    """What a request knows about the service that sent it."""

    key_id: str
    name: str
    scope: str

    @property
    def can_write(self) -> bool:
        return self.scope == Scope.WRITE


class _Verdicts:
    """Key digest -> Caller (or None for a refused key), each remembered API_KEY_CACHE_SECONDS."""

    def __init__(self) -> None:
        self._cache = TLRUCache(maxsize=MAX_CACHED_VERDICTS, ttu=self._expiry, timer=time.monotonic)
        self._lock = threading.Lock()  # cachetools' caches are not thread-safe

    @staticmethod
    def _expiry(_digest, _verdict, now: float) -> float:
        return now + settings.API_KEY_CACHE_SECONDS

    def get(self, digest: str) -> tuple[bool, Caller | None]:
        with self._lock:
            if digest in self._cache:
                return True, self._cache[digest]
            return False, None

    def put(self, digest: str, caller: Caller | None) -> None:
        with self._lock:
            self._cache[digest] = caller

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


verdicts = _Verdicts()
_key_parser = KeyParser()


def caller_for_key(key: str) -> Caller | None:
    digest = hashlib.sha256(key.encode()).hexdigest()
    found, caller = verdicts.get(digest)
    if found:
        return caller
    try:
        # From the primary: a key created a moment ago must work before replicas replay it.
        api_key = ServiceAPIKey.objects.db_manager(DEFAULT_DB_ALIAS).get_from_key(key)
    except ServiceAPIKey.DoesNotExist:
        api_key = None
    valid = api_key is not None and not api_key.has_expired  # get_from_key already leaves revoked keys out
    caller = Caller(key_id=str(api_key.pk), name=api_key.name, scope=api_key.scope) if valid else None
    # Expiring keys are cached no longer than their expiry allows.
    if not (valid and api_key.expiry_date):
        verdicts.put(digest, caller)
    return caller


def key_from(meta: dict) -> str | None:
    """The key in a request's `Authorization: Api-Key <key>` header (WSGI environ or request.META)."""
    key = (_key_parser.get_from_authorization(SimpleNamespace(META=meta)) or "").strip()
    return key if 0 < len(key) <= MAX_KEY_LENGTH else None


def caller_from(meta: dict) -> Caller | None:
    """The caller a request's Authorization header names, or None when it names no valid key."""
    key = key_from(meta)
    return caller_for_key(key) if key else None


class APIKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        if not request.META.get("HTTP_AUTHORIZATION"):
            return None
        key = key_from(request.META)
        if key is None:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Api-Key <key>'.", code="invalid_api_key")
        caller = caller_for_key(key)
        if caller is None:
            raise exceptions.AuthenticationFailed("Unknown, revoked or expired API key.", code="invalid_api_key")
        request.META["questdb.caller"] = caller.name  # for the request log
        return (None, caller)

    def authenticate_header(self, request) -> str:
        return KEYWORD


class HasScopedAPIKey(permissions.BasePermission):
    message = "This API key's scope does not allow this method."
    code = "insufficient_scope"

    def has_permission(self, request, view) -> bool:
        caller = request.auth
        if not isinstance(caller, Caller):
            raise exceptions.NotAuthenticated("An API key is required: 'Authorization: Api-Key <key>'.")
        # POST lookups that only read declare it on the view.
        reads_only = request.method in permissions.SAFE_METHODS or getattr(view, "action", None) in getattr(
            view, "read_only_actions", ()
        )
        return reads_only or caller.can_write
