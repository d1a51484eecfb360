"""Cached character payloads and their invalidation. Keys: `character:{id}`, `user_characters:{user_id}`."""

import json
from datetime import datetime

from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from characters import selectors
from characters.api.serializers import CharacterSerializer
from characters.models import Character
from questdb.cache import Key, lookup_cache, pack, unpack
from questdb.errors import NotFound
from questdb.identifiers import parse_uuid


def character_keys(*, character_id, user_id) -> list[Key]:
    return [Key("character", str(character_id)), Key("user_characters", str(user_id))]


def invalidate_character(character: Character) -> None:
    lookup_cache.invalidate(character_keys(character_id=character.pk, user_id=character.user_id))


def _purge_epoch(character: Character) -> float | None:
    return character.purge_at.timestamp() if character.purge_at else None


def _refresh_countdown(item: dict, now: float) -> dict:
    purge_at = datetime.fromisoformat(item["purge_at"].replace("Z", "+00:00")).timestamp()
    item["seconds_until_purge"] = max(0, int(purge_at - now))
    return item


def character_payload(*, character_id) -> tuple[bytes, str]:
    """The character's JSON body and ETag."""
    character_uuid = parse_uuid(character_id)
    if character_uuid is None:
        raise NotFound("No character with this id.", code="character_not_found")

    def fill() -> bytes | None:
        try:
            character = selectors.character_get(character_id=character_uuid)
        except NotFound:
            return None
        body = JSONRenderer().render(CharacterSerializer(character).data)
        return pack({"etag": character.etag(), "purge_at": _purge_epoch(character)}, body)

    record = lookup_cache.get_or_fill(Key("character", str(character_uuid)), fill)
    if record is None:
        raise NotFound("No character with this id.", code="character_not_found")
    meta, body = unpack(record)
    if meta["purge_at"] is not None:
        # Pending deletion: the countdown moves, and past purge_at the character is gone.
        now = timezone.now().timestamp()
        if meta["purge_at"] <= now:
            raise NotFound("No character with this id.", code="character_not_found")
        body = JSONRenderer().render(_refresh_countdown(json.loads(body), now))
    return body, meta["etag"]


def characters_of_user_payload(*, user_id) -> tuple[bytes, int]:
    """A user's characters, oldest first, as a JSON list, and how many there are."""
    user_uuid = parse_uuid(user_id)

    def fill() -> bytes:
        characters = list(selectors.character_list(user_id=user_uuid))
        body = JSONRenderer().render(CharacterSerializer(characters, many=True).data)
        purge_ats = [_purge_epoch(c) for c in characters if c.purge_at]
        return pack({"count": len(characters), "purge_at": min(purge_ats) if purge_ats else None}, body)

    if user_uuid is None:
        selectors.character_list(user_id=user_id)  # raises the 400 for a malformed id
    meta, body = unpack(lookup_cache.get_or_fill(Key("user_characters", str(user_uuid)), fill))
    if meta["purge_at"] is None:
        return body, meta["count"]
    now = timezone.now().timestamp()
    items = [
        _refresh_countdown(item, now) if item["purge_at"] else item
        for item in json.loads(body)
        if not item["purge_at"] or _refresh_countdown(item, now)["seconds_until_purge"] > 0
    ]
    return JSONRenderer().render(items), len(items)
