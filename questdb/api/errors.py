"""One error format for the whole API: `{"code": ..., "detail": ..., "field": ..., "errors": [...]}`.

`code` is stable and machine-readable; `detail` is for humans; `field` names the
offending input field when there is one; `errors` lists every field error.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from psycopg_pool import PoolTimeout
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from questdb.db.middleware import replica_failed_under_read
from questdb.errors import DomainError

logger = logging.getLogger(__name__)

_DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "invalid_api_key",
    exceptions.PermissionDenied: "insufficient_scope",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def error_body(code: str, detail: str, *, field: str | None = None, errors: list | None = None) -> dict:
    body = {"code": code, "detail": detail}
    if field:
        body["field"] = field
    if errors is not None:
        body["errors"] = errors
    return body


def _flatten(detail, prefix: str = "") -> list[dict]:
    """DRF's nested validation errors as a flat list of {field, code, detail}."""
    if isinstance(detail, dict):
        return [
            item for key, value in detail.items() for item in _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            return [{"field": prefix or None, "code": item.code, "detail": str(item)} for item in detail]
        return [item for index, value in enumerate(detail) for item in _flatten(value, f"{prefix}[{index}]")]
    return [{"field": prefix or None, "code": getattr(detail, "code", "invalid"), "detail": str(detail)}]


def _database_failure(exc: Exception) -> Response | None:
    if replica_failed_under_read(exc):
        return None  # a replica failed under a read: ConsistencyMiddleware retries it on the primary
    if isinstance(exc.__cause__, PoolTimeout):
        logger.warning("database pool exhausted")
        body = error_body("database_busy", "All database connections are busy; retry shortly.")
    else:
        logger.error("database unavailable: %s", exc.__class__.__name__)
        body = error_body("database_unavailable", "The database is unavailable; retry shortly.")
    return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "1"})


def exception_handler(exc: Exception, context) -> Response | None:
    if isinstance(exc, DomainError):
        set_rollback()
        errors = [{"field": e.field, "code": e.code, "detail": e.message} for e in exc.errors] or None
        return Response(error_body(exc.code, exc.message, field=exc.field, errors=errors), status=exc.status)
    if isinstance(exc, (OperationalError, InterfaceError)):
        set_rollback()
        return _database_failure(exc)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("body_too_large", "The request body is too large."), status=413)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = errors[0] if errors else {"field": None, "detail": "Invalid input."}
        body = error_body("invalid", first["detail"], field=first["field"], errors=errors)
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, exceptions.APIException):
        set_rollback()
        code = next((code for cls, code in _DRF_CODES.items() if isinstance(exc, cls)), exc.default_code)
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        return Response(error_body(code, str(exc.detail)), status=exc.status_code, headers=headers)
    return None


ADMIN_PREFIX = "/admin/"


def bad_request_view(request, exception=None):
    return JsonResponse(error_body("bad_request", "The request is malformed or not allowed."), status=400)


def forbidden_view(request, exception=None):
    return JsonResponse(error_body("forbidden", "This request is not allowed."), status=403)


def csrf_failure_view(request, reason: str = ""):
    """JSON outside the admin (e.g. a POST to /healthz); the admin's browser users get Django's page."""
    if request.path_info.startswith(ADMIN_PREFIX):
        from django.views.csrf import csrf_failure

        return csrf_failure(request, reason=reason)
    return JsonResponse(error_body("csrf_failed", "CSRF verification failed for this request."), status=403)


def not_found_view(request, exception=None):
    return JsonResponse(error_body("not_found", "No such endpoint."), status=404)


def server_error_view(request):
    return JsonResponse(error_body("server_error", "An unexpected error occurred; it has been logged."), status=500)
