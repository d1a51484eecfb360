"""The protos: buf's style-guide lint, and the descriptor rules questdb adds (ids as strings, typed shapes)."""

import shutil
import subprocess
import sys
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor

from questdb.v1 import characters_pb2, sessions_pb2, users_pb2

ROOT = Path(__file__).resolve().parents[2]
FILES = (users_pb2.DESCRIPTOR, characters_pb2.DESCRIPTOR, sessions_pb2.DESCRIPTOR)


def test_the_protos_pass_buf_lint():
    buf = shutil.which("buf", path=str(Path(sys.executable).parent))
    assert buf, "buf is installed by requirements-dev.txt (buf-bin)"
    done = subprocess.run([buf, "lint"], cwd=ROOT / "proto", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_services_and_methods_are_the_ones_game_servers_call():
    methods = {
        service.name: [method.name for method in service.methods]
        for file in FILES
        for service in file.services_by_name.values()
    }
    assert methods == {
        "UserService": ["GetUser", "GetUserByUsername", "GetUserByEmail"],
        "CharacterDbService": [
            "GetCharacter",
            "GetCharacters",
            "GetCharacterList",
            "CreateCharacter",
            "UpdateCharacter",
            "DeleteCharacter",
            "RestoreCharacter",
        ],
        "SessionService": ["GetSession", "GetSessionByToken", "RefreshSession"],
    }


def _fields():
    for file in FILES:
        for message in file.message_types_by_name.values():
            yield from message.fields


def test_ids_are_strings_times_are_timestamps_and_no_json_strings():
    for field in _fields():
        # Row ids are UUID strings; game ids inside the JSON shapes (map, item, skill) stay integers.
        if field.name == "id" or (field.name.endswith("_id") and field.name not in ("map_id", "skill_id", "item_id")):
            assert field.type == FieldDescriptor.TYPE_STRING, field.full_name
        if field.name.endswith("_at") or field.name == "ban_expires":
            assert field.message_type.full_name == "google.protobuf.Timestamp", field.full_name
        assert "json" not in field.name, field.full_name
    shapes = {f.name: f.message_type.name for f in characters_pb2.Character.DESCRIPTOR.fields if f.message_type}
    assert {k: shapes[k] for k in ("stats", "looks", "position", "inventory", "skills")} == {
        "stats": "Stats",
        "looks": "Looks",
        "position": "Position",
        "inventory": "InventoryItem",
        "skills": "Skill",
    }


def test_field_names_are_lower_snake_case_and_numbers_start_at_one():
    for file in FILES:
        assert file.package == "questdb.v1"
        for message in file.message_types_by_name.values():
            numbers = sorted(f.number for f in message.fields)
            assert numbers == list(range(1, len(numbers) + 1)), message.full_name
            for field in message.fields:
                assert field.name == field.name.lower(), field.full_name
                assert "__" not in field.name, field.full_name
