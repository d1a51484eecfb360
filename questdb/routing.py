"""Per-request read routing state and the consistency token.

A request's reads stick to one database: the first read picks a replica that is
healthy, not lagging and (when the caller sent `X-Consistency-Token`) has
replayed the caller's last write; every later read in the request uses the same
one. After the request writes, its reads go to the primary. State lives in a
ContextVar, so threads and async tasks never see each other's.
"""

import contextlib
import re
from contextvars import ContextVar
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.http import JsonResponse

from questdb import replicas

CONSISTENCY_HEADER = "X-Consistency-Token"
_LSN_TEXT = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(text: str) -> int:
    match = _LSN_TEXT.match(text.strip())
    if not match:
        raise ValueError(f"not a WAL position: {text!r}")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclass
class RequestRouting:
    min_lsn: int = 0  # from the caller's consistency token
    pinned: str | None = None  # the alias this request reads from, once chosen
    wrote: bool = False
    commit_lsn: int | None = None  # primary WAL position after this request's last commit


_request: ContextVar[RequestRouting | None] = ContextVar("questdb_request_routing", default=None)
# A stricter floor for one block of reads, set by the cache before it fills a key.
_read_floor: ContextVar[int] = ContextVar("questdb_read_floor", default=0)


def current() -> RequestRouting | None:
    return _request.get()


@contextlib.contextmanager
def request_scope(*, min_lsn: int = 0):
    token = _request.set(RequestRouting(min_lsn=min_lsn))
    try:
        yield _request.get()
    finally:
        _request.reset(token)


@contextlib.contextmanager
def reads_at_least(lsn: int):
    """Route the reads inside this block to a database that has replayed `lsn`."""
    token = _read_floor.set(max(_read_floor.get(), lsn))
    try:
        yield
    finally:
        _read_floor.reset(token)


def choose_read_alias() -> str:
    if not replicas.monitor.aliases or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    state = _request.get()
    floor = _read_floor.get()
    if state is None:
        return replicas.monitor.choose(min_lsn=floor) or DEFAULT_DB_ALIAS
    if state.wrote:
        return DEFAULT_DB_ALIAS
    required = max(state.min_lsn, floor)
    if state.pinned is not None:
        if state.pinned == DEFAULT_DB_ALIAS or replicas.monitor.has_replayed(state.pinned, required):
            return state.pinned
        # Moving to a fresher database is safe; never move back to a staler one.
        state.pinned = DEFAULT_DB_ALIAS
        return DEFAULT_DB_ALIAS
    alias = replicas.monitor.choose(min_lsn=required) or DEFAULT_DB_ALIAS
    if floor <= state.min_lsn:  # a cache fill's stricter floor must not pin the request
        state.pinned = alias
    return alias


def note_write() -> None:
    state = _request.get()
    if state is not None:
        state.wrote = True
        state.commit_lsn = None


def primary_lsn() -> int | None:
    """The primary's current WAL position, read after a commit; None off PostgreSQL."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        lsn = parse_lsn(cursor.fetchone()[0])
    state = _request.get()
    if state is not None and not connection.in_atomic_block:
        state.commit_lsn = lsn
    return lsn


def _is_database_failure(exception: Exception) -> bool:
    from django.db import InterfaceError, OperationalError

    return isinstance(exception, (OperationalError, InterfaceError))


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
            response = self.get_response(request)
            if state.wrote and response.status_code < 500:
                lsn = state.commit_lsn if state.commit_lsn is not None else primary_lsn()
                if lsn is not None:
                    response[CONSISTENCY_HEADER] = format_lsn(lsn)
        return response

    def process_exception(self, request, exception):
        state = _request.get()
        if state is None or state.wrote or not _is_database_failure(exception):
            return None
        if state.pinned in (None, DEFAULT_DB_ALIAS):
            return None
        # The replica died under this read: skip it and answer from the primary instead.
        replicas.monitor.mark_down(state.pinned, reason=str(exception))
        connections[state.pinned].close()
        state.pinned = DEFAULT_DB_ALIAS
        return self.get_response(request)
