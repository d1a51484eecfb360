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


class Encoded:
    """A response already in its wire encoding, which the server sends as it is (see `passing_encoded`)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def passing_encoded(serialize: Callable[[Message], bytes] | None) -> Callable:
    """A method's response serializer that sends an `Encoded` response's bytes unchanged: a cached answer
    need not be parsed into a message only for grpcio to encode it again."""
    if serialize is None:
        return None

    def serializer(response) -> bytes:
        return response.data if type(response) is Encoded else serialize(response)

    return serializer


def field_bytes(number: int, data: bytes) -> bytes:
    """`data` (an encoded message) as field `number` of an enclosing message: the encoding of a response
    whose only set field is that message."""
    return _tag(number) + _varint(len(data)) + data


def _tag(number: int) -> bytes:
    return _varint(number << 3 | 2)  # wire type 2: length-delimited


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


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
