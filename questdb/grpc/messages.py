"""REST payloads to protobuf messages: the cached JSON bodies become messages field for field."""

import json

from google.protobuf import json_format
from google.protobuf.message import Message


def from_body(body: bytes, message: Message) -> Message:
    """Fill `message` from a JSON body as the REST API serves it (null means unset)."""
    return from_payload(json.loads(body), message)


def from_payload(payload: dict, message: Message) -> Message:
    # Unknown keys are skipped: a JSON column holding a key the proto does not know still reads.
    return json_format.ParseDict(payload, message, ignore_unknown_fields=True)


def plain(message: Message):
    """A message's fields as plain Python values (ints stay ints), for the services' validators."""
    return {field.name: getattr(message, field.name) for field in message.DESCRIPTOR.fields}
