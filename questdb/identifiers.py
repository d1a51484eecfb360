from uuid import UUID


def parse_uuid(value) -> UUID | None:
    """The UUID in `value`, or None when it is not one (malformed ids are lookups that find nothing)."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (ValueError, AttributeError, TypeError):
        return None
