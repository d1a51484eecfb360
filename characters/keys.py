"""The cache keys a character lives under, and their invalidation: `character:{id}`, `user_characters:{user_id}`."""

from characters.models import Character
from questdb.cache.keys import Key
from questdb.cache.store import lookup_cache
from questdb.errors import InvalidInput
from questdb.identifiers import parse_uuid


def character_key(character_id) -> Key | None:
    return Key.for_id("character", character_id)


def characters_of_user_key(user_id) -> Key:
    user_uuid = parse_uuid(user_id)
    if user_uuid is None:
        raise InvalidInput("user must be a user id.", code="invalid_user", field="user")
    return Key("user_characters", str(user_uuid))


def character_keys(*, character_id, user_id) -> list[Key]:
    return [Key("character", str(character_id)), Key("user_characters", str(user_id))]


def keys_of_character_rows(rows: list[dict]) -> list[Key]:
    """The keys of characters captured by the change outbox (an ownership change reaches both owners' lists)."""
    return [key for row in rows for key in character_keys(character_id=row["id"], user_id=row["user_id"])]


# What the invalidation consumer (questdb.cache.invalidation) calls for each captured change of a table.
CHANGE_KEYS = {"characters": keys_of_character_rows}


def invalidate_character(character: Character) -> None:
    lookup_cache.invalidate(character_keys(character_id=character.pk, user_id=character.user_id))
