"""The database router: writes to the primary, reads to a healthy, caught-up replica.

The rules:
- writes, `select_for_update` and every read inside an open transaction use the primary;
- other reads use a replica that is reachable, within DB_REPLICA_MAX_LAG, and has
  replayed the caller's consistency token, else the primary;
- migrations run on the primary only.

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

from questdb.db import replicas
from questdb.db.aliases import REPLICA_PREFIX

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


def _ours(alias: str | None) -> bool:
    return alias == DEFAULT_DB_ALIAS or bool(alias and alias.startswith(REPLICA_PREFIX))


class PrimaryReplicaRouter:
    """Django's DATABASE_ROUTERS entry: the rules above, per model operation."""

    def db_for_read(self, model, **hints) -> str:
        return choose_read_alias()

    def db_for_write(self, model, **hints) -> str:
        note_write()
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        # Replicas hold the primary's rows, so objects read from any of them may relate.
        return _ours(obj1._state.db) and _ours(obj2._state.db)

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS
