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


def invalidate_character(character: Character) -> None:
    lookup_cache.invalidate(character_keys(character_id=character.pk, user_id=character.user_id))
