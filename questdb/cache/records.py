"""A cache record: one line of JSON metadata (ETag, expiry, ...), then the response body served as is."""

import json


def pack(meta: dict, body: bytes) -> bytes:
    """A cache record: one line of JSON metadata, then the response body."""
    return json.dumps(meta, separators=(",", ":")).encode() + b"\n" + body


def unpack(record: bytes) -> tuple[dict, bytes]:
    meta, _, body = record.partition(b"\n")
    return json.loads(meta), body
