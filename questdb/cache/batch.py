"""Batch lookups: many cached lookups of one kind answered together, each exactly as the single one.

Every app's batch lookup (`<app>/api/lookups.py`) is `cached_lookups` with its own key,
loader and `serve` function; the REST batch endpoints and any other edge call those.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from questdb.cache.keys import Key
from questdb.cache.records import Payload
from questdb.cache.store import lookup_cache
from questdb.errors import DomainError, InvalidInput, NotFound

BATCH_TOO_LARGE = "batch_too_large"


@dataclass(frozen=True)
class LookupResult:
    """One item of a batch: the single lookup's body and headers, or the error it would raise."""

    id: Any  # as the caller gave it
    body: bytes | None = None
    headers: dict = field(default_factory=dict)
    error: DomainError | None = None

    @property
    def found(self) -> bool:
        return self.error is None


def cached_lookups(
    ids: Sequence[Any],
    *,
    key_for: Callable[[Any], Key | None],
    load_many: Callable[[list[Key]], dict[Key, bytes]],
    serve: Callable[[bytes], Payload],
    not_found: Callable[[], NotFound],
) -> list[LookupResult]:
    """One result per id, in order (a repeated id is looked up once and answered each time).

    `key_for` is the single lookup's key (None for an id that names nothing), `load_many` its
    fill for many keys in one query, `serve` its rules for a cached record.
    """
    if len(ids) > settings.API_BATCH_LIMIT:
        raise InvalidInput(
            f"At most {settings.API_BATCH_LIMIT} ids per batch; split the request.", code=BATCH_TOO_LARGE, field="ids"
        )
    keys = [key_for(raw) for raw in ids]
    records = lookup_cache.get_or_fill_many([key for key in keys if key is not None], load_many)
    results = []
    for raw, key in zip(ids, keys, strict=True):
        record = records.get(key) if key is not None else None
        if record is None:
            results.append(LookupResult(raw, error=not_found()))
            continue
        try:
            body, headers = serve(record)
        except DomainError as error:
            results.append(LookupResult(raw, error=error))
            continue
        results.append(LookupResult(raw, body=body, headers=headers))
    return results
