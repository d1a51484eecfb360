"""CharacterDbService: the same cached lookups and services as /api/v1/characters/..."""

import contextlib
import functools
import json

from characters import selectors, services
from characters.api import lookups
from characters.api.serializers import CharacterSerializer
from characters.keys import character_key
from questdb.cache.batch import cached_lookups
from questdb.cache.hit_path import NotServedFromCache
from questdb.cache.records import Payload, unpack
from questdb.errors import InvalidInput
from questdb.grpc.messages import (
    MESSAGE_CACHE_ENTRIES,
    Encoded,
    by_content,
    field_bytes,
    from_payload,
    plain,
    timestamp,
)
from questdb.grpc.registry import RpcService
from questdb.v1 import characters_pb2 as pb
from questdb.v1 import characters_pb2_grpc

OBJECT_FIELDS = ("stats", "looks", "position")
LIST_FIELDS = ("inventory", "skills")
# Proto field names whose REST (and service) name differs.
REST_NAMES = {"user_id": "user"}


def character_message(payload: dict, etag: str = "") -> pb.Character:
    """A REST character payload as a Character message (`user` becomes `user_id`).

    Built field by field: json_format costs about ten times as much, which a batch of 50 pays 50 times.
    A JSON column holding something the message cannot take (a key written outside questdb) falls back
    to json_format, which skips unknown keys."""
    try:
        return pb.Character(
            id=payload["id"],
            user_id=payload["user"],
            name=payload["name"],
            money=payload["money"],
            stats=pb.Stats(**payload["stats"]),
            inventory=[pb.InventoryItem(**item) for item in payload["inventory"]],
            skills=[pb.Skill(**skill) for skill in payload["skills"]],
            looks=pb.Looks(**payload["looks"]),
            position=pb.Position(**payload["position"]),
            is_active=payload["is_active"],
            created_at=timestamp(payload["created_at"]),
            updated_at=timestamp(payload["updated_at"]),
            deleted_at=timestamp(payload["deleted_at"]),
            purge_at=timestamp(payload["purge_at"]),
            seconds_until_purge=payload["seconds_until_purge"],
            etag=etag,
        )
    except (TypeError, ValueError, KeyError):
        payload = dict(payload, user_id=payload["user"], etag=etag)
        del payload["user"]
        return from_payload(payload, pb.Character())


# A cached character as an encoded one-character GetCharactersResponse: `characters` and every response's
# `character` are field 1, so the same bytes parse as a GetCharacterResponse, and the encodings of several
# concatenate to one GetCharactersResponse with all of them (protobuf merges concatenated messages).
_encoded_character = by_content(
    lambda body, etag: pb.GetCharactersResponse(characters=[character_message(json.loads(body), etag)])
)
assert pb.GetCharacterResponse.DESCRIPTOR.fields_by_name["character"].number == 1
assert pb.GetCharactersResponse.DESCRIPTOR.fields_by_name["characters"].number == 1
NOT_FOUND_IDS = pb.GetCharactersResponse.DESCRIPTOR.fields_by_name["not_found_ids"].number


def _encoded(body: bytes, headers: dict) -> bytes:
    return _encoded_character(body, headers.get("ETag", ""))


# The batch's per-item work, remembered: the key of an id (parsing a UUID), and the encoded answer of a cache
# record (parsing its metadata, serving it, finding its encoding). Both are pure functions of their input, so
# nothing here can be stale: a changed row is a different record.
_character_key = functools.lru_cache(maxsize=MESSAGE_CACHE_ENTRIES)(character_key)


@functools.lru_cache(maxsize=MESSAGE_CACHE_ENTRIES)
def _steady_encoding(record: bytes) -> bytes | None:
    """The encoded answer of a record, or None for a character pending deletion, whose countdown moves and
    which is gone past its purge time: `serve_character` serves those afresh on every call."""
    meta, _ = unpack(record)
    if meta["purge_at"] is not None:
        return None
    payload = lookups.serve_character(record)
    return _encoded(payload.body, payload.headers)


def _serve_encoded(record: bytes) -> Payload:
    """`lookups.serve_character` with the body as the encoded message."""
    encoded = _steady_encoding(record)
    if encoded is None:
        payload = lookups.serve_character(record)  # NotFound past its purge time
        encoded = _encoded(payload.body, payload.headers)
    return Payload(encoded, {})


def _from_model(character) -> pb.Character:
    return character_message(CharacterSerializer(character).data, character.etag())


def _value(message, field: str):
    """A field of a request message as the services take it: plain dicts and lists, unset as absent."""
    value = getattr(message, field)
    if field in OBJECT_FIELDS:
        return plain(value)
    if field in LIST_FIELDS:
        return [plain(item) for item in value]
    return value


def starting_fields(request: pb.CreateCharacterRequest) -> dict:
    fields = {field: _value(request, field) for field in ("money", *OBJECT_FIELDS) if request.HasField(field)}
    fields.update({field: _value(request, field) for field in LIST_FIELDS if getattr(request, field)})
    return fields


def changes_from_mask(character: pb.Character, paths) -> dict:
    """The REST PATCH body the mask's paths mean: `stats` replaces every member, `stats.level` merges one."""
    known = pb.Character.DESCRIPTOR.fields_by_name
    changes: dict = {}
    for path in paths:
        field, _, member = path.partition(".")
        if field not in known:
            raise InvalidInput(f"Unknown field {path}.", code=services.UNKNOWN_FIELD, field=path)
        name = REST_NAMES.get(field, field)
        if name not in services.UPDATABLE_FIELDS:
            changes[name] = None  # the service refuses it by name (read-only or unknown)
        elif member:
            sub = getattr(character, field)
            if field not in OBJECT_FIELDS or member not in sub.DESCRIPTOR.fields_by_name:
                raise InvalidInput(f"Unknown field {path}.", code=services.UNKNOWN_FIELD, field=path)
            changes.setdefault(name, {})[member] = getattr(sub, member)
        else:
            changes[name] = _value(character, field)
    return changes


class CharacterServicer(characters_pb2_grpc.CharacterDbServiceServicer):
    def GetCharacter(self, request, context):
        payload = lookups.character_payload(character_id=request.id)
        return Encoded(_encoded(payload.body, payload.headers))

    def GetCharacters(self, request, context):
        ids = list(dict.fromkeys(request.ids))
        # `lookups.character_payloads` (one cache round trip for the hits, one query for the misses), with
        # each item served as its encoded message.
        results = cached_lookups(
            ids,
            key_for=_character_key,
            load_many=lookups.character_records,
            serve=_serve_encoded,
            not_found=selectors.character_not_found,
        )
        # The found characters' encodings and the missing ids, joined: one GetCharactersResponse, encoded
        # without building a message.
        found = [result.body for result in results if result.found]
        missing = [field_bytes(NOT_FOUND_IDS, str(result.id).encode()) for result in results if not result.found]
        return Encoded(b"".join(found + missing))

    def GetCharacterList(self, request, context):
        with contextlib.suppress(NotServedFromCache):  # more than a page: read them all from the database
            items = json.loads(lookups.characters_of_user_page(user_id=request.user_id).body)["results"]
            return pb.GetCharacterListResponse(characters=[character_message(item) for item in items])
        characters = selectors.character_list(user_id=request.user_id)
        return pb.GetCharacterListResponse(characters=[_from_model(character) for character in characters])

    def CreateCharacter(self, request, context):
        character = services.character_create(user_id=request.user_id, name=request.name, **starting_fields(request))
        return pb.CreateCharacterResponse(character=_from_model(character))

    def UpdateCharacter(self, request, context):
        character = services.character_update(
            character_id=request.character.id,
            changes=changes_from_mask(request.character, request.update_mask.paths),
            if_match=request.etag or None,
        )
        return pb.UpdateCharacterResponse(character=_from_model(character))

    def DeleteCharacter(self, request, context):
        character = services.character_schedule_deletion(character_id=request.id)
        return pb.DeleteCharacterResponse(character=_from_model(character))

    def RestoreCharacter(self, request, context):
        return pb.RestoreCharacterResponse(character=_from_model(services.character_restore(character_id=request.id)))


SERVICE = RpcService(
    name="questdb.v1.CharacterDbService",
    servicer=CharacterServicer(),
    add_to_server=characters_pb2_grpc.add_CharacterDbServiceServicer_to_server,
    writes=frozenset({"CreateCharacter", "UpdateCharacter", "DeleteCharacter", "RestoreCharacter"}),
)
