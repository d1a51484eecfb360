"""Django's browser-facing middleware, skipped for API requests.

Services call /api/ with an API key: they have no session, no CSRF cookie, no
messages and no Django user. Staff use the admin, which needs all four, and the
audit trail's context (who made a change, from which page). These
subclasses keep the admin's behaviour and let API requests pass straight through.
"""

from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.db import connection
from django.http import JsonResponse
from pghistory.middleware import HistoryMiddleware as PghistoryMiddleware

from questdb.api.errors import error_body
from questdb.text import UNSAFE_TEXT, is_unsafe

API_PREFIX = "/api/"


class _SkippedForAPI:
    def __call__(self, request):
        if request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_SkippedForAPI, DjangoSessionMiddleware):
    pass


class AuthenticationMiddleware(_SkippedForAPI, DjangoAuthenticationMiddleware):
    pass


class MessageMiddleware(_SkippedForAPI, DjangoMessageMiddleware):
    pass


class RefuseUnsafeText:
    """400 for a path or query holding text the database cannot store (questdb/text.py), before any view.

    JSON bodies get the same rule in the API's parser (questdb/api/parsers.py).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_unsafe(request.path_info) or (request.META.get("QUERY_STRING") and _unsafe_query(request.GET)):
            return JsonResponse(
                error_body(UNSAFE_TEXT, "The path or query holds a NUL character or a lone surrogate."), status=400
            )
        return self.get_response(request)


def _unsafe_query(query) -> bool:
    return any(is_unsafe(name) or any(is_unsafe(value) for value in values) for name, values in query.lists())


class HistoryMiddleware(_SkippedForAPI, PghistoryMiddleware):
    """Attach the staff member and URL to every audit event a staff request causes (PostgreSQL only)."""

    def __call__(self, request):
        if connection.vendor != "postgresql":
            return self.get_response(request)
        return super().__call__(request)
