"""Per-service API keys: `Authorization: Api-Key <key>`, scoped `read` or `write`.

Hashing, storage and the admin come from djangorestframework-api-key. The check
runs on every request, so verdicts are cached in-process for API_KEY_CACHE_SECONDS
(a revoked key stops working within that time) and a cache hit costs no query.
"""

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from questdb.models import Scope, ServiceAPIKey

KEYWORD = "Api-Key"
MAX_CACHED_VERDICTS = 10_000


@dataclass(frozen=True)
class Caller:
    """What a request knows about the service that sent it."""

    key_id: str
    name: str
    scope: str

    @property
    def can_write(self) -> bool:
        return self.scope == Scope.WRITE


class _VerdictCache:
    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[float, Caller | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str):
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or entry[0] < time.monotonic():
                return False, None
            self._entries.move_to_end(digest)
            return True, entry[1]

    def put(self, digest: str, caller: Caller | None) -> None:
        with self._lock:
            self._entries[digest] = (time.monotonic() + settings.API_KEY_CACHE_SECONDS, caller)
            self._entries.move_to_end(digest)
            while len(self._entries) > MAX_CACHED_VERDICTS:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


verdicts = _VerdictCache()


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
    valid = (
        api_key is not None
        and not api_key.revoked
        and not (api_key.expiry_date and api_key.expiry_date < timezone.now())
    )
    caller = Caller(key_id=str(api_key.pk), name=api_key.name, scope=api_key.scope) if valid else None
    # Expiring keys are cached no longer than their expiry allows.
    if not (valid and api_key.expiry_date):
        verdicts.put(digest, caller)
    return caller


def _key_in(header: str) -> str | None:
    keyword, _, key = header.partition(" ")
    key = key.strip()
    return key if keyword == KEYWORD and key and len(key) <= 200 else None


def caller_from_header(header: str) -> Caller | None:
    """The caller an `Authorization` header names, or None when it names no valid key."""
    key = _key_in(header)
    return caller_for_key(key) if key else None


class APIKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        key = _key_in(header)
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
