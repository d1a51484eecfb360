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
from pghistory.middleware import HistoryMiddleware as PghistoryMiddleware

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


class HistoryMiddleware(_SkippedForAPI, PghistoryMiddleware):
    """Attach the staff member and URL to every audit event a staff request causes (PostgreSQL only)."""

    def __call__(self, request):
        if connection.vendor != "postgresql":
            return self.get_response(request)
        return super().__call__(request)
