"""Cache keys: `{CACHE_KEY_PREFIX}:v{SHAPE_VERSION}:{family}:{ident}`, with its stamp and fill lock beside it."""

from django.conf import settings

from questdb.identifiers import canonical_uuid

# Bump when the serialized shape of any cached payload changes: old entries are then never read.
SHAPE_VERSION = 2


class Key:
    """A cached lookup's key. Its names are built once, when it is made (no cached_property: on Python 3.11 each
    first access takes a lock): a lookup reads all three, and the invalidation consumer makes thousands a second."""

    __slots__ = ("family", "ident", "lock", "stamp", "value")

    def __init__(self, family: str, ident: str) -> None:
        prefix = settings.CACHE_KEY_PREFIX
        self.family, self.ident = family, ident
        self.value = f"{prefix}:v{SHAPE_VERSION}:{family}:{ident}"
        self.stamp = f"{prefix}:stamp:{family}:{ident}"
        self.lock = f"{prefix}:lock:{family}:{ident}"

    @classmethod
    def for_id(cls, family: str, value) -> "Key | None":
        """The key of a row by its UUID; None when `value` is not one (such an id finds nothing)."""
        row_id = canonical_uuid(value)
        return cls(family, row_id) if row_id else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)  # a str caches its hash: keys are hashed often (dicts of a batch)

    def __repr__(self) -> str:
        return f"Key({self.family!r}, {self.ident!r})"
