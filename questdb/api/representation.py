"""Helpers for hand-written `to_representation` methods.

DRF's ModelSerializer rebuilds its fields for every instance; the API's read
serializers spell their output out instead (the declared fields still drive the
OpenAPI schema). tests/api/test_representation.py keeps the two in agreement.
"""

from datetime import UTC, datetime


def iso(value: datetime | None) -> str | None:
    """A timestamp as DRF renders it: ISO 8601 in UTC with a trailing Z."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
