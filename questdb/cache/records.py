"""A cache record: one line of JSON metadata (ETag, expiry, ...), then the response body served as is."""

import json
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple


class Payload(NamedTuple):
    """What every cached lookup answers: the response body and its headers (an ETag, or none)."""

    body: bytes
    headers: dict


def pack(meta: dict, body: bytes) -> bytes:
    """A cache record: one line of JSON metadata, then the response body."""
    return json.dumps(meta, separators=(",", ":")).encode() + b"\n" + body


@lru_cache(maxsize=4096)
def unpack(record: bytes) -> tuple[MappingProxyType, bytes]:
    """The metadata (read-only: one parse serves every hit of the same record) and the body."""
    meta, _, body = record.partition(b"\n")
    return MappingProxyType(json.loads(meta)), body
