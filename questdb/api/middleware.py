"""Django's browser-facing middleware, skipped for API requests.

Services call /api/ with an API key: they have no session, no CSRF cookie, no
messages and no Django user. Staff use the admin, which needs all four. These
subclasses keep the admin's behaviour and let API requests pass straight through.
"""

from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware

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
