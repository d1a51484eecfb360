"""A cache record: one line of JSON metadata (ETag, expiry, ...), then the response body served as is."""

import json
from typing import NamedTuple


class Payload(NamedTuple):
    """What every cached lookup answers: the response body and its headers (an ETag, or none)."""

    body: bytes
    headers: dict


def pack(meta: dict, body: bytes) -> bytes:
    """A cache record: one line of JSON metadata, then the response body."""
    return json.dumps(meta, separators=(",", ":")).encode() + b"\n" + body


def unpack(record: bytes) -> tuple[dict, bytes]:
    meta, _, body = record.partition(b"\n")
    return json.loads(meta), body
