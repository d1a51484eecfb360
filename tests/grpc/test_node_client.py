"""The same server through an independent client: Node's @grpc/grpc-js with @grpc/proto-loader."""

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from characters.models import Character
from sessions_app.models import Session

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
CLIENT = Path(__file__).parent / "node" / "client.mjs"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def run(address: str, calls: list[dict]) -> list[dict]:
    node = shutil.which("node")
    assert node, "node is required"
    assert (CLIENT.parent / "node_modules" / "@grpc" / "grpc-js").is_dir(), "run `make tests/grpc/node/node_modules`"
    done = subprocess.run(
        [node, str(CLIENT)],
        input=json.dumps({"address": address, "calls": calls}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_every_method_and_error_code_from_node(grpc_app, make_user, write_key, read_key):
    user = make_user(username="NodeUser", email="node@example.com")
    kept = Character.objects.create(user=user, name="Kept")
    session = Session.objects.create(user=user, token="node-token", expires_at=timezone.now() + timedelta(hours=1))
    write = {"authorization": f"Api-Key {write_key}"}
    read = {"authorization": f"Api-Key {read_key}"}

    def c(service, method, request, metadata=write):
        return {"service": service, "method": method, "request": request, "metadata": metadata}

    calls = [
        c("UserService", "GetUser", {"id": str(user.id)}, read),
        c("UserService", "GetUserByUsername", {"username": "nodeuser"}, read),
        c("UserService", "GetUserByEmail", {"email": "NODE@example.com"}, read),
        c("CharacterDbService", "CreateCharacter", {"user_id": str(user.id), "name": "NodeHero", "money": 7}),
        c("CharacterDbService", "GetCharacter", {"id": str(kept.id)}, read),
        c("CharacterDbService", "GetCharacters", {"ids": [str(kept.id), UNKNOWN]}, read),
        c("CharacterDbService", "GetCharacterList", {"user_id": str(user.id)}, read),
        c(
            "CharacterDbService",
            "UpdateCharacter",
            {
                "character": {"id": str(kept.id), "position": {"map_id": 3, "x": 1.5}},
                "update_mask": {"paths": ["position"]},
            },
        ),
        c("CharacterDbService", "DeleteCharacter", {"id": str(kept.id)}),
        c("CharacterDbService", "RestoreCharacter", {"id": str(kept.id)}),
        c("SessionService", "GetSession", {"id": str(session.id)}, read),
        c("SessionService", "GetSessionByToken", {"token": "node-token"}, read),
        c("SessionService", "RefreshSession", {"id": str(session.id)}),
        # failures
        c("UserService", "GetUser", {"id": UNKNOWN}, {}),
        c("UserService", "GetUser", {"id": UNKNOWN}, {"authorization": "Api-Key nope"}),
        c("CharacterDbService", "DeleteCharacter", {"id": str(kept.id)}, read),
        c("UserService", "GetUser", {"id": UNKNOWN}, read),
        c("CharacterDbService", "CreateCharacter", {"user_id": str(user.id), "name": "kept"}),
        c("CharacterDbService", "CreateCharacter", {"user_id": str(user.id), "name": "x"}),
        c(
            "CharacterDbService",
            "UpdateCharacter",
            {"character": {"id": str(kept.id), "money": 1}, "update_mask": {"paths": ["money"]}, "etag": '"1.0"'},
        ),
        c("CharacterDbService", "RestoreCharacter", {"id": str(kept.id)}),
    ]
    answers = run(grpc_app.address, calls)
    ok, failed = answers[:13], answers[13:]
    assert all(a["ok"] for a in ok), [a for a in ok if not a["ok"]]
    assert {ok[i]["response"]["user"]["id"] for i in range(3)} == {str(user.id)}
    created = ok[3]["response"]["character"]
    assert (created["name"], created["money"], created["stats"]["hp"]) == ("NodeHero", 7, 100)
    assert ok[3]["initial"]["x-consistency-token"]
    assert all(a["trailing"]["x-request-id"] for a in ok)  # every answer's, with its status
    assert ok[4]["response"]["character"]["etag"]
    assert [ch["name"] for ch in ok[5]["response"]["characters"]] == ["Kept"]
    assert ok[5]["response"]["not_found_ids"] == [UNKNOWN]
    assert [ch["name"] for ch in ok[6]["response"]["characters"]] == ["Kept", "NodeHero"]
    position = ok[7]["response"]["character"]["position"]
    assert (position["map_id"], position["x"]) == (3, 1.5)
    assert ok[8]["response"]["character"]["seconds_until_purge"] > 0
    assert "deleted_at" not in ok[9]["response"]["character"]
    assert ok[10]["response"]["session"]["user"]["username"] == "NodeUser"
    assert ok[11]["response"]["session"]["id"] == str(session.id)
    assert "token" not in ok[11]["response"]["session"]
    assert (
        ok[12]["response"]["session"]["expires_at"]["seconds"] > ok[10]["response"]["session"]["expires_at"]["seconds"]
    )

    expected = [
        ("UNAUTHENTICATED", "not_authenticated", None),
        ("UNAUTHENTICATED", "invalid_api_key", None),
        ("PERMISSION_DENIED", "insufficient_scope", None),
        ("NOT_FOUND", "user_not_found", None),
        ("ALREADY_EXISTS", "name_taken", "name"),
        ("INVALID_ARGUMENT", "invalid_name", "name"),
        ("ABORTED", "precondition_failed", None),
        ("FAILED_PRECONDITION", "not_pending_deletion", None),
    ]
    got = [
        (a["code"], a["trailing"].get("questdb-error-code"), a["trailing"].get("questdb-error-field")) for a in failed
    ]
    assert got == expected
    assert all(a["trailing"]["x-request-id"] for a in failed)
