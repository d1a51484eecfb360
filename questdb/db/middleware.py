"""The request side of read/write splitting: the consistency token in and out, and the replica retry."""

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.http import JsonResponse

from questdb.db import replicas
from questdb.db.router import CONSISTENCY_HEADER, current, format_lsn, parse_lsn, primary_lsn, request_scope


def replica_failed_under_read(exception: Exception) -> bool:
    """True when a database error broke a read on a replica, which ConsistencyMiddleware retries on the primary."""
    state = current()
    return (
        state is not None
        and not state.wrote
        and state.pinned not in (None, DEFAULT_DB_ALIAS)
        and isinstance(exception, (OperationalError, InterfaceError))
    )


class ConsistencyMiddleware:
    """Reads `X-Consistency-Token`, scopes routing to the request, retries reads a dead replica broke,
    and stamps write responses with the primary's WAL position."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        header = request.headers.get(CONSISTENCY_HEADER)
        try:
            min_lsn = parse_lsn(header) if header else 0
        except ValueError:
            return JsonResponse(
                {"code": "invalid_consistency_token", "detail": f"{CONSISTENCY_HEADER} must look like 0/16B3748."},
                status=400,
            )
        with request_scope(min_lsn=min_lsn) as state:
            if request.path_info.startswith(tuple(settings.DB_PRIMARY_ONLY_PATHS)):
                # The staff console reads its own writes (sign-in, saves, messages): the primary only.
                state.pinned = DEFAULT_DB_ALIAS
            response = self.get_response(request)
            if state.wrote and response.status_code < 500:
                lsn = state.commit_lsn if state.commit_lsn is not None else primary_lsn()
                if lsn is not None:
                    response[CONSISTENCY_HEADER] = format_lsn(lsn)
        return response

    def process_exception(self, request, exception):
        return self.get_response(request) if fall_back_to_primary(exception) else None


def fall_back_to_primary(exception: Exception) -> bool:
    """After a database error: when it broke a read on a replica, skip that replica and point the request's
    reads at the primary, and say True (the caller runs the read again); else False."""
    if not replica_failed_under_read(exception):
        return False
    state = current()
    replicas.monitor.mark_down(state.pinned, reason=str(exception))
    connections[state.pinned].close()
    state.pinned = DEFAULT_DB_ALIAS
    return True
