"""The REST batch lookups: `POST .../batch/` with `{"ids": [...]}`, answered item by item.

The answer is `{"results": [...]}`, one item per requested id, in the order asked (a
repeated id is answered each time):
- found: `{"id": <as sent>, "status": 200, "body": <the single lookup's body>}`, plus
  `"etag"` where the single lookup sends an ETag header;
- not found (unknown, malformed, or gone as the single lookup says):
  `{"id": <as sent>, "status": 404, "code": "...", "detail": "..."}`, the single lookup's error.
The request itself fails only when malformed: 400 `invalid_ids`, or `batch_too_large`
past API_BATCH_LIMIT ids.
"""

import json
import re
from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from questdb.api.responses import json_body
from questdb.cache.batch import LookupResult
from questdb.cache.records import Payload
from questdb.errors import InvalidInput

INVALID_IDS = "invalid_ids"
_PLAIN = re.compile(r"[A-Za-z0-9_.:{}-]*")  # a JSON string of these characters is the text in quotes


def batch_ids(data: Any) -> list[str]:
    """The ids of a batch request body, checked: a list of strings (the lookups hold the API_BATCH_LIMIT)."""
    ids = data.get("ids") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
        raise InvalidInput('The body must be {"ids": [<id>, ...]}.', code=INVALID_IDS, field="ids")
    return ids


def _json_string(value) -> bytes:
    if isinstance(value, str) and _PLAIN.fullmatch(value):
        return b'"%s"' % value.encode()  # most ids: nothing to escape, no json.dumps
    return json.dumps(value).encode()


def _item(result: LookupResult) -> bytes:
    head = b'{"id":%s,' % _json_string(result.id)
    if result.error is not None:
        error = {"status": result.error.status, "code": result.error.code, "detail": result.error.message}
        return head + json.dumps(error, separators=(",", ":")).encode()[1:]
    etag = result.headers.get("ETag")
    etag_part = b'"etag":%s,' % _json_string(etag) if etag else b""
    return head + b'"status":200,' + etag_part + b'"body":' + result.body + b"}"


def batch_body(results: Sequence[LookupResult]) -> bytes:
    """The batch answer, built around the cached bodies as they are (no parsing, no re-rendering)."""
    return b'{"results":[' + b",".join(_item(result) for result in results) + b"]}"


def batch_response(results: Sequence[LookupResult]):
    return json_body(Payload(batch_body(results), {}))


BatchRequest = inline_serializer(
    name="BatchRequest",
    fields={
        "ids": serializers.ListField(
            child=serializers.CharField(),
            help_text="The ids to look up, at most API_BATCH_LIMIT (100 by default).",
        )
    },
)


def batch_response_schema(name: str, body_serializer) -> serializers.Serializer:
    """The OpenAPI shape of a batch answer whose found items carry `body_serializer`'s body."""
    item = inline_serializer(
        name=f"{name}Item",
        fields={
            "id": serializers.CharField(help_text="The id as sent."),
            "status": serializers.IntegerField(help_text="200, or the single lookup's error status (404)."),
            "etag": serializers.CharField(required=False, help_text="The item's ETag, where the lookup has one."),
            "body": body_serializer(required=False, help_text="Present when status is 200."),
            "code": serializers.CharField(required=False, help_text="Present when status is not 200."),
            "detail": serializers.CharField(required=False),
        },
    )
    return inline_serializer(name=name, fields={"results": serializers.ListField(child=item)})
