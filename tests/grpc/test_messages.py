"""The character mapper: field by field as json_format would build it, and json_format for odd JSON; the
messages remembered by content."""

import json

from characters.rpc import character_message
from questdb.grpc.messages import by_content, from_payload
from questdb.v1 import characters_pb2 as pb

PAYLOAD = {
    "id": "6f1c1f0e-7a8b-4c1d-9e2f-0a1b2c3d4e5f",
    "user": "0b1c1f0e-7a8b-4c1d-9e2f-0a1b2c3d4e5f",
    "name": "Hero",
    "money": 12,
    "stats": {
        "level": 2,
        "experience": 0,
        "strength": 10,
        "dexterity": 10,
        "intelligence": 10,
        "vitality": 10,
        "hp": 100,
        "mp": 100,
    },
    "inventory": [{"slot": 0, "item_id": 5, "quantity": 1}],
    "skills": [{"skill_id": 3, "level": 1}],
    "looks": {"race": 1, "gender": 0, "face": 1, "hair": 1},
    "position": {"map_id": 1, "x": 0.5, "y": 0.0, "z": -2.0},
    "is_active": True,
    "created_at": "2026-01-02T03:04:05.123456Z",
    "updated_at": "2026-01-02T03:04:06Z",
    "deleted_at": "2026-01-03T00:00:00Z",
    "purge_at": "2026-01-04T00:00:00Z",
    "seconds_until_purge": 86400,
}


def test_the_mapper_builds_what_json_format_builds():
    expected = dict(PAYLOAD, user_id=PAYLOAD["user"], etag='"1.5"')
    del expected["user"]
    assert character_message(PAYLOAD, '"1.5"') == from_payload(expected, pb.Character())
    live = dict(PAYLOAD, deleted_at=None, purge_at=None, seconds_until_purge=None)
    message = character_message(live)
    assert not message.HasField("deleted_at")
    assert not message.HasField("seconds_until_purge")


def test_a_key_written_outside_questdb_is_skipped_not_an_error():
    odd = dict(PAYLOAD, stats={**PAYLOAD["stats"], "luck": 7})
    assert character_message(odd).stats.level == 2


def test_messages_are_remembered_by_the_bytes_they_come_from():
    built = []

    def build(body: bytes, etag: str) -> pb.Character:
        built.append(body)
        return character_message(json.loads(body), etag)

    serialized = by_content(build)
    body = json.dumps(PAYLOAD).encode()
    first = serialized(body, '"1.5"')
    assert serialized(bytes(body), '"1.5"') == first  # the same bytes (another object): built once
    assert pb.Character.FromString(first) == character_message(PAYLOAD, '"1.5"')
    changed = json.dumps(dict(PAYLOAD, money=13)).encode()
    assert pb.Character.FromString(serialized(changed, '"1.6"')).money == 13  # a changed row is a new entry
    assert pb.Character.FromString(serialized(body, '"1.6"')).etag == '"1.6"'
    assert len(built) == 3
