"""REST payloads to protobuf messages: the cached JSON bodies become messages field for field."""

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_body(body: bytes, message: Message) -> Message:
    """Fill `message` from a JSON body as the REST API serves it (null means unset)."""
    return from_payload(json.loads(body), message)


# Messages remembered per worker process and message type (about 1 KB each, body and message).
MESSAGE_CACHE_ENTRIES = 4096


def by_content(build: Callable[[bytes, str], Message]) -> Callable[[bytes, str], bytes]:
    """`build(body, etag)` serialized, remembered by the body's and ETag's own bytes.

    The cached JSON body stays the one source of truth: every RPC still reads it from the lookup cache
    (or the database), and only turning the same bytes into the same message again is saved. A changed
    row is a different body, so a different key: nothing here can be stale, and the lookup cache's
    invalidation is all there is to invalidate. Least recently used entries go first."""

    @functools.lru_cache(maxsize=MESSAGE_CACHE_ENTRIES)
    def serialized(body: bytes, etag: str = "") -> bytes:
        return build(body, etag).SerializeToString()

    return serialized


def from_payload(payload: dict, message: Message) -> Message:
    # Unknown keys are skipped: a JSON column holding a key the proto does not know still reads.
    return json_format.ParseDict(payload, message, ignore_unknown_fields=True)


def plain(message: Message):
    """A message's fields as plain Python values (ints stay ints), for the services' validators."""
    return {field.name: getattr(message, field.name) for field in message.DESCRIPTOR.fields}


def timestamp(text: str | None) -> Timestamp | None:
    """An ISO 8601 time of a REST payload as a Timestamp (None for null), exact to the microsecond.

    Built from its seconds and nanos: Timestamp.FromDatetime, which passing a datetime to a message runs,
    costs about twice as much, and a batch of 50 characters converts 200 of them."""
    if not text:
        return None
    since = datetime.fromisoformat(text) - EPOCH
    return Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)
