import re
from uuid import UUID

_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_uuid(value) -> UUID | None:
    """The UUID in `value`, or None when it is not one (malformed ids are lookups that find nothing)."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (ValueError, AttributeError, TypeError):
        return None


def canonical_uuid(value) -> str | None:
    """The UUID in `value` as lower-case hex with hyphens (how questdb names rows), or None."""
    if isinstance(value, str) and _CANONICAL.fullmatch(value):
        return value  # the common case, without building a UUID
    row_id = parse_uuid(value)
    return str(row_id) if row_id else None
