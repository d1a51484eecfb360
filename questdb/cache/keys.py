"""Cache keys: `{CACHE_KEY_PREFIX}:v{SHAPE_VERSION}:{family}:{ident}`, with its stamp and fill lock beside it."""

from dataclasses import dataclass
from functools import cached_property

from django.conf import settings

from questdb.identifiers import canonical_uuid

# Bump when the serialized shape of any cached payload changes: old entries are then never read.
SHAPE_VERSION = 2


@dataclass(frozen=True)
class Key:
    family: str
    ident: str

    @classmethod
    def for_id(cls, family: str, value) -> "Key | None":
        """The key of a row by its UUID; None when `value` is not one (such an id finds nothing)."""
        row_id = canonical_uuid(value)
        return cls(family, row_id) if row_id else None

    def __hash__(self) -> int:
        return hash(self.value)  # a str caches its hash: keys are hashed often (dicts of a batch)

    @cached_property
    def value(self) -> str:
        return f"{settings.CACHE_KEY_PREFIX}:v{SHAPE_VERSION}:{self.family}:{self.ident}"

    @cached_property
    def stamp(self) -> str:
        return f"{settings.CACHE_KEY_PREFIX}:stamp:{self.family}:{self.ident}"

    @cached_property
    def lock(self) -> str:
        return f"{settings.CACHE_KEY_PREFIX}:lock:{self.family}:{self.ident}"
