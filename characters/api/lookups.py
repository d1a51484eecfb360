"""Cached character payloads (the bodies of the character lookups and lists) and the hit path's routes for them."""

import json
from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from characters import selectors
from characters.api.serializers import CharacterSerializer
from characters.keys import character_key, characters_of_user_key
from characters.models import Character
from questdb.api.pagination import StandardPagination
from questdb.cache.batch import LookupResult, cached_lookups
from questdb.cache.hit_path import CachedBatchRead, CachedRead, NotServedFromCache, api_path
from questdb.cache.keys import Key
from questdb.cache.records import Payload, pack, unpack
from questdb.cache.store import lookup_cache
from questdb.errors import InvalidInput, NotFound


def _purge_epoch(character: Character) -> float | None:
    return character.purge_at.timestamp() if character.purge_at else None


def _refresh_countdown(item: dict, now: float) -> dict:
    purge_at = datetime.fromisoformat(item["purge_at"].replace("Z", "+00:00")).timestamp()
    item["seconds_until_purge"] = max(0, int(purge_at - now))
    return item


def serve_character(record: bytes) -> Payload:
    """The body and ETag of a cached character; NotFound once it is past its purge time."""
    meta, body = unpack(record)
    if meta["purge_at"] is not None:
        # Pending deletion: the countdown moves, and past purge_at the character is gone.
        now = timezone.now().timestamp()
        if meta["purge_at"] <= now:
            raise selectors.character_not_found()
        body = JSONRenderer().render(_refresh_countdown(json.loads(body), now))
    return Payload(body, {"ETag": meta["etag"]})


def character_record(character: Character) -> bytes:
    """What the cache keeps for a character: its ETag, its purge time and its body."""
    body = JSONRenderer().render(CharacterSerializer(character).data)
    return pack({"etag": character.etag(), "purge_at": _purge_epoch(character)}, body)


def character_payload(*, character_id) -> Payload:
    """The character's JSON body and its headers (the ETag)."""
    key = character_key(character_id)
    if key is None:
        raise selectors.character_not_found()

    def fill() -> bytes | None:
        try:
            return character_record(selectors.character_get(character_id=key.ident))
        except NotFound:
            return None

    record = lookup_cache.get_or_fill(key, fill)
    if record is None:
        raise selectors.character_not_found()
    return serve_character(record)


def character_records(keys: list[Key]) -> dict[Key, bytes]:
    """The records of the characters `keys` name that exist, in one query (a batch's misses)."""
    characters = selectors.character_get_many(character_ids=[key.ident for key in keys])
    return {character_key(character.pk): character_record(character) for character in characters}


def character_payloads(*, character_ids: Sequence) -> list[LookupResult]:
    """`character_payload` for many ids at once: one Redis round trip for the hits, one query for the misses.

    One result per id, in order: the same body and ETag as the single lookup, or its 404.
    """
    return cached_lookups(
        character_ids,
        key_for=character_key,
        load_many=character_records,
        serve=serve_character,
        not_found=selectors.character_not_found,
    )


def serve_character_list(record: bytes) -> Payload:
    """A user's characters in the paginated envelope, when one page holds them all."""
    meta, body = unpack(record)
    count = meta["count"]
    if meta["purge_at"] is not None:
        now = timezone.now().timestamp()
        counted = [_refresh_countdown(item, now) if item["purge_at"] else item for item in json.loads(body)]
        # Past purge_at a character is gone, even before the purge deletes it.
        items = [item for item in counted if not item["purge_at"] or item["seconds_until_purge"] > 0]
        body, count = JSONRenderer().render(items), len(items)
    if count > StandardPagination.page_size:
        raise NotServedFromCache("more than one page")  # the view pages from the database
    return Payload(b'{"count":%d,"next":null,"previous":null,"results":%s}' % (count, body), {})


def characters_of_user_page(*, user_id) -> Payload:
    """A user's characters, oldest first, in the paginated envelope (NotServedFromCache if they need paging)."""
    key = characters_of_user_key(user_id)

    def fill() -> bytes:
        characters = list(selectors.character_list(user_id=key.ident))
        body = JSONRenderer().render(CharacterSerializer(characters, many=True).data)
        purge_ats = [_purge_epoch(c) for c in characters if c.purge_at]
        return pack({"count": len(characters), "purge_at": min(purge_ats) if purge_ats else None}, body)

    return serve_character_list(lookup_cache.get_or_fill(key, fill))


def _list_key(request, match) -> Key | None:
    if set(request.query) != {"user"}:
        return None
    try:
        return characters_of_user_key(request.query["user"])
    except InvalidInput:
        return None


CACHED_READS = [
    CachedRead(
        "character-detail",
        "GET",
        api_path("characters/(?P<value>[^/]+)/"),
        lambda r, m: character_key(m["value"]),
        serve_character,
    ),
    CachedRead("character-list", "GET", api_path("characters/"), _list_key, serve_character_list),
    CachedBatchRead("character-batch", api_path("characters/batch/"), character_key, serve_character),
]
