"""Every method over a real server with Python's grpcio: success paths, error codes, scopes and metadata."""

import json
import time
from datetime import timedelta

import grpc
import pytest
from django.utils import timezone
from google.protobuf import field_mask_pb2

from characters.models import Character
from questdb.v1 import characters_pb2 as cpb
from questdb.v1 import sessions_pb2 as spb
from questdb.v1 import users_pb2 as upb
from sessions_app.models import Session
from tests.cache.consumer import wait_for_invalidation
from tests.grpc.helpers import error_code, error_field, error_info, failure, metric, scrape

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
NOT_FOUND, INVALID = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def user(make_user):
    return make_user(username="Alice", email="Alice@Example.com", name="Alice A.")


@pytest.fixture
def live_session(user):
    return Session.objects.create(user=user, token="secret-token-1", expires_at=timezone.now() + timedelta(hours=1))


def test_users_by_id_username_and_email(grpc_app, user, read_md):
    by_id = grpc_app.users.GetUser(upb.GetUserRequest(id=str(user.id)), metadata=read_md).user
    assert (by_id.id, by_id.username, by_id.email, by_id.name, by_id.role) == (
        str(user.id),
        "Alice",
        "Alice@Example.com",
        "Alice A.",
        "user",
    )
    assert not by_id.HasField("image")
    assert by_id.banned is False
    assert not by_id.HasField("ban_reason")
    assert not by_id.HasField("ban_expires")
    assert by_id.created_at.ToDatetime().year == user.created_at.year
    by_name = grpc_app.users.GetUserByUsername(upb.GetUserByUsernameRequest(username="ALICE"), metadata=read_md)
    by_email = grpc_app.users.GetUserByEmail(upb.GetUserByEmailRequest(email="alice@example.COM"), metadata=read_md)
    assert by_name.user == by_id == by_email.user


@pytest.mark.parametrize("user_id", ["00000000-0000-4000-8000-000000000000", "not-a-uuid", ""])
def test_an_unknown_or_malformed_user_is_not_found_with_its_code(grpc_app, read_md, user_id):
    error = failure(grpc_app.users.GetUser, upb.GetUserRequest(id=user_id), metadata=read_md)
    assert error.code() == NOT_FOUND
    assert error_code(error) == "user_not_found"
    info = error_info(error)
    assert (info.reason, info.domain) == ("user_not_found", "questdb")


def test_character_lifecycle_create_get_update_delete_restore(grpc_app, user, write_md):
    created = grpc_app.characters.CreateCharacter(
        cpb.CreateCharacterRequest(user_id=str(user.id), name="Hero", looks=cpb.Looks(race=1, face=2, hair=3)),
        metadata=write_md,
    ).character
    assert (created.name, created.user_id, created.money, created.stats.level, created.stats.hp) == (
        "Hero",
        str(user.id),
        0,
        1,
        100,
    )
    assert (created.looks.race, created.looks.face, created.position.map_id) == (1, 2, 1)
    assert created.etag
    assert not created.HasField("seconds_until_purge")
    assert not created.HasField("deleted_at")

    got = grpc_app.characters.GetCharacter(cpb.GetCharacterRequest(id=created.id), metadata=write_md).character
    assert got == created

    changes = cpb.Character(
        id=created.id,
        money=500,
        stats=cpb.Stats(level=2),
        inventory=[cpb.InventoryItem(slot=0, item_id=7, quantity=3)],
    )
    mask = field_mask_pb2.FieldMask(paths=["money", "stats.level", "inventory"])
    updated = grpc_app.characters.UpdateCharacter(
        cpb.UpdateCharacterRequest(character=changes, update_mask=mask, etag=created.etag), metadata=write_md
    ).character
    assert (updated.money, updated.stats.level, updated.stats.hp) == (500, 2, 100)  # stats.level merged
    assert [(i.slot, i.item_id, i.quantity) for i in updated.inventory] == [(0, 7, 3)]
    assert updated.etag != created.etag
    assert Character.objects.using("default").get(id=created.id).money == 500

    stale = failure(
        grpc_app.characters.UpdateCharacter,
        cpb.UpdateCharacterRequest(character=changes, update_mask=mask, etag=created.etag),
        metadata=write_md,
    )
    assert stale.code() == grpc.StatusCode.ABORTED
    assert error_code(stale) == "precondition_failed"

    deleted = grpc_app.characters.DeleteCharacter(cpb.DeleteCharacterRequest(id=created.id), metadata=write_md)
    assert deleted.character.HasField("deleted_at")
    assert deleted.character.seconds_until_purge > 80_000
    again = grpc_app.characters.DeleteCharacter(cpb.DeleteCharacterRequest(id=created.id), metadata=write_md)
    assert again.character.purge_at == deleted.character.purge_at  # idempotent
    pending = failure(
        grpc_app.characters.UpdateCharacter,
        cpb.UpdateCharacterRequest(character=changes, update_mask=field_mask_pb2.FieldMask(paths=["money"])),
        metadata=write_md,
    )
    assert pending.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_code(pending) == "pending_deletion"

    restored = grpc_app.characters.RestoreCharacter(cpb.RestoreCharacterRequest(id=created.id), metadata=write_md)
    assert not restored.character.HasField("deleted_at")
    assert not restored.character.HasField("seconds_until_purge")
    twice = failure(grpc_app.characters.RestoreCharacter, cpb.RestoreCharacterRequest(id=created.id), metadata=write_md)
    assert twice.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_code(twice) == "not_pending_deletion"


def test_list_and_batch_answer_many_characters(grpc_app, user, read_md):
    characters = [Character.objects.create(user=user, name=f"Member{n}") for n in range(3)]
    Character.objects.filter(id=characters[1].id).update(
        deleted_at=timezone.now(), purge_at=timezone.now() + timedelta(hours=1)
    )
    listed = grpc_app.characters.GetCharacterList(cpb.GetCharacterListRequest(user_id=str(user.id)), metadata=read_md)
    assert [c.name for c in listed.characters] == ["Member0", "Member1", "Member2"]
    assert 3000 < listed.characters[1].seconds_until_purge <= 3600

    unknown = "00000000-0000-4000-8000-000000000000"
    ids = [str(characters[2].id), unknown, str(characters[0].id), "junk", str(characters[2].id)]
    for _ in range(2):  # cold, then from the cache
        batch = grpc_app.characters.GetCharacters(cpb.GetCharactersRequest(ids=ids), metadata=read_md)
        assert [c.name for c in batch.characters] == ["Member2", "Member0"]
        assert list(batch.not_found_ids) == [unknown, "junk"]
        assert all(c.etag for c in batch.characters)


@pytest.mark.parametrize(
    ("request_fields", "status", "code", "field"),
    [
        ({"name": "9lives"}, INVALID, "invalid_name", "name"),
        ({"name": "Ok_Name", "user_id": "nope"}, INVALID, "invalid_user", "user_id"),
        ({"name": "Ok_Name", "user_id": "00000000-0000-4000-8000-000000000000"}, INVALID, "user_not_found", "user_id"),
        ({"name": "Ok_Name", "money": -1}, INVALID, "invalid_money", "money"),
        ({"name": "Ok_Name", "stats": cpb.Stats(level=-1)}, INVALID, "invalid_stats", "stats"),
        ({"name": "taken"}, grpc.StatusCode.ALREADY_EXISTS, "name_taken", "name"),
    ],
)
def test_create_errors_name_the_field(grpc_app, user, write_md, request_fields, status, code, field):
    Character.objects.create(user=user, name="Taken")
    request = cpb.CreateCharacterRequest(**{"user_id": str(user.id), **request_fields})
    error = failure(grpc_app.characters.CreateCharacter, request, metadata=write_md)
    assert (error.code(), error_code(error), error_field(error)) == (status, code, field)
    assert error_info(error).metadata["field"] == field


def test_the_character_limit_is_a_failed_precondition(grpc_app, user, write_md, settings):
    for n in range(5):
        Character.objects.create(user=user, name=f"Alt{n}")
    error = failure(
        grpc_app.characters.CreateCharacter,
        cpb.CreateCharacterRequest(user_id=str(user.id), name="Sixth"),
        metadata=write_md,
    )
    assert (error.code(), error_code(error)) == (grpc.StatusCode.FAILED_PRECONDITION, "character_limit_reached")


@pytest.mark.parametrize(
    ("paths", "code", "field"),
    [
        (["name"], "read_only_field", "name"),
        (["user_id"], "read_only_field", "user_id"),
        (["nonsense"], "unknown_field", "nonsense"),
        (["stats.charisma"], "unknown_field", "stats.charisma"),
        (["money"], "invalid_money", "money"),
    ],
)
def test_update_errors_name_the_field(grpc_app, user, write_md, paths, code, field):
    character = Character.objects.create(user=user, name="Target")
    request = cpb.UpdateCharacterRequest(
        character=cpb.Character(id=str(character.id), money=-5), update_mask=field_mask_pb2.FieldMask(paths=paths)
    )
    error = failure(grpc_app.characters.UpdateCharacter, request, metadata=write_md)
    assert (error.code(), error_code(error), error_field(error)) == (INVALID, code, field)


def test_unknown_characters_and_bad_batches(grpc_app, write_md):
    unknown = "00000000-0000-4000-8000-000000000000"
    for call, request in [
        (grpc_app.characters.GetCharacter, cpb.GetCharacterRequest(id=unknown)),
        (grpc_app.characters.DeleteCharacter, cpb.DeleteCharacterRequest(id="bad")),
        (grpc_app.characters.RestoreCharacter, cpb.RestoreCharacterRequest(id=unknown)),
    ]:
        error = failure(call, request, metadata=write_md)
        assert (error.code(), error_code(error)) == (NOT_FOUND, "character_not_found")
    too_many = failure(
        grpc_app.characters.GetCharacters,
        cpb.GetCharactersRequest(ids=[f"id{n}" for n in range(101)]),
        metadata=write_md,
    )
    assert (too_many.code(), error_field(too_many)) == (INVALID, "ids")
    bad_list = failure(
        grpc_app.characters.GetCharacterList, cpb.GetCharacterListRequest(user_id="x"), metadata=write_md
    )
    assert (bad_list.code(), error_code(bad_list), error_field(bad_list)) == (INVALID, "invalid_user", "user_id")


def test_sessions_by_id_and_token_and_refresh(grpc_app, live_session, user, write_md):
    by_id = grpc_app.sessions.GetSession(spb.GetSessionRequest(id=str(live_session.id)), metadata=write_md).session
    assert (by_id.id, by_id.user.id, by_id.user.username) == (str(live_session.id), str(user.id), "Alice")
    assert not by_id.HasField("ip_address")
    assert not by_id.HasField("impersonated_by")
    by_token = grpc_app.sessions.GetSessionByToken(
        spb.GetSessionByTokenRequest(token="secret-token-1"), metadata=write_md
    )
    assert by_token.session == by_id
    assert "secret-token-1" not in by_token.SerializeToString().decode("latin-1")
    refreshed = grpc_app.sessions.RefreshSession(spb.RefreshSessionRequest(id=str(live_session.id)), metadata=write_md)
    assert refreshed.session.expires_at.ToDatetime() > by_id.expires_at.ToDatetime() + timedelta(days=6)


def test_session_errors(grpc_app, live_session, write_md):
    Session.objects.filter(id=live_session.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    for call, request in [
        (grpc_app.sessions.GetSession, spb.GetSessionRequest(id=str(live_session.id))),
        (grpc_app.sessions.GetSessionByToken, spb.GetSessionByTokenRequest(token="secret-token-1")),
        (grpc_app.sessions.RefreshSession, spb.RefreshSessionRequest(id=str(live_session.id))),
    ]:
        error = failure(call, request, metadata=write_md)
        assert (error.code(), error_code(error)) == (grpc.StatusCode.FAILED_PRECONDITION, "session_expired")
    empty = failure(grpc_app.sessions.GetSessionByToken, spb.GetSessionByTokenRequest(token=""), metadata=write_md)
    assert (empty.code(), error_code(empty), error_field(empty)) == (INVALID, "invalid_token", "token")
    unknown = failure(
        grpc_app.sessions.GetSessionByToken, spb.GetSessionByTokenRequest(token="nope"), metadata=write_md
    )
    assert (unknown.code(), error_code(unknown)) == (NOT_FOUND, "session_not_found")


def test_keys_and_scopes(grpc_app, user, read_md):
    request = upb.GetUserRequest(id=str(user.id))
    missing = failure(grpc_app.users.GetUser, request)
    assert (missing.code(), error_code(missing)) == (grpc.StatusCode.UNAUTHENTICATED, "not_authenticated")
    for header in ("Api-Key wrong", "Bearer abc", "Api-Key"):
        wrong = failure(grpc_app.users.GetUser, request, metadata=(("authorization", header),))
        assert (wrong.code(), error_code(wrong)) == (grpc.StatusCode.UNAUTHENTICATED, "invalid_api_key")
    assert grpc_app.users.GetUser(request, metadata=read_md).user.id == str(user.id)
    write = cpb.CreateCharacterRequest(user_id=str(user.id), name="Nope")
    denied = failure(grpc_app.characters.CreateCharacter, write, metadata=read_md)
    assert (denied.code(), error_code(denied)) == (grpc.StatusCode.PERMISSION_DENIED, "insufficient_scope")
    assert not Character.objects.using("default").filter(name="Nope").exists()


def test_writes_return_a_consistency_token_and_bad_tokens_are_refused(grpc_app, user, write_md):
    _response, call = grpc_app.characters.CreateCharacter.with_call(
        cpb.CreateCharacterRequest(user_id=str(user.id), name="Tokened"), metadata=write_md
    )
    initial = dict(call.initial_metadata())
    assert initial["x-consistency-token"].count("/") == 1
    assert dict(call.trailing_metadata())["x-request-id"]
    _, read = grpc_app.users.GetUser.with_call(upb.GetUserRequest(id=str(user.id)), metadata=write_md)
    assert "x-consistency-token" not in dict(read.initial_metadata())  # reads carry none
    bad = failure(
        grpc_app.users.GetUser,
        upb.GetUserRequest(id=str(user.id)),
        metadata=(*write_md, ("x-consistency-token", "yesterday")),
    )
    assert (bad.code(), error_code(bad)) == (INVALID, "invalid_consistency_token")


def test_request_ids_are_kept_and_logged_without_tokens(grpc_app, live_session, write_md):
    from tests.grpc.conftest import log_text

    request = spb.GetSessionByTokenRequest(token="secret-token-1")
    _, call = grpc_app.sessions.GetSessionByToken.with_call(
        request, metadata=(*write_md, ("x-request-id", "trace-abc.1"))
    )
    assert dict(call.trailing_metadata())["x-request-id"] == "trace-abc.1"
    assert "x-request-id" not in dict(call.initial_metadata())  # with the answer, not in a message of its own
    lines = [json.loads(line) for line in log_text(grpc_app).splitlines() if '"trace-abc.1"' in line]
    assert lines
    assert lines[-1]["status"] == "OK"
    assert lines[-1]["api_key"] == "character-server"
    assert lines[-1]["path"] == "/questdb.v1.SessionService/GetSessionByToken"
    text = log_text(grpc_app) + scrape(grpc_app.metrics_port)
    assert "secret-token-1" not in text
    assert write_md[0][1].split()[1] not in text


def test_a_cached_lookup_costs_no_sql(grpc_app, user, read_md, invalidation_process):
    character = Character.objects.create(user=user, name="Cached")
    wait_for_invalidation()  # the insert's own invalidation (of the owner's list) has landed
    calls = [
        (grpc_app.users.GetUser, upb.GetUserRequest(id=str(user.id))),
        (grpc_app.characters.GetCharacter, cpb.GetCharacterRequest(id=str(character.id))),
        (grpc_app.characters.GetCharacters, cpb.GetCharactersRequest(ids=[str(character.id)])),
        (grpc_app.characters.GetCharacterList, cpb.GetCharacterListRequest(user_id=str(user.id))),
    ]
    for call, request in calls:
        call(request, metadata=read_md)  # fills
    grpc_app.users.GetUser(upb.GetUserRequest(id=str(user.id)), metadata=read_md)  # the key's verdict is cached too
    before = scrape(grpc_app.metrics_port)
    for call, request in calls * 3:
        call(request, metadata=read_md)
    after = scrape(grpc_app.metrics_port)
    assert metric(after, "django_db_execute_total") == metric(before, "django_db_execute_total")
    hits = metric(after, "questdb_cache_events_total", event="hit") - metric(
        before, "questdb_cache_events_total", event="hit"
    )
    assert hits == 12
    assert metric(after, "questdb_http_request_duration_seconds_count", method="GRPC", status="OK") >= 12


def test_the_batch_serves_a_pending_deletion_afresh_from_the_cache(grpc_app, user, read_md, invalidation_process):
    """The batch remembers each cached record's encoded answer, except a pending deletion's: its countdown
    moves, and past its purge time it is gone, with the record still cached."""
    steady = Character.objects.create(user=user, name="Steady")
    pending = Character.objects.create(
        user=user, name="Leaving", deleted_at=timezone.now(), purge_at=timezone.now() + timedelta(seconds=6)
    )
    wait_for_invalidation()
    request = cpb.GetCharactersRequest(ids=[str(pending.id), str(steady.id)])
    grpc_app.characters.GetCharacters(request, metadata=read_md)  # fills
    before = scrape(grpc_app.metrics_port)
    first = grpc_app.characters.GetCharacters(request, metadata=read_md)
    assert [c.name for c in first.characters] == ["Leaving", "Steady"]
    assert 0 < first.characters[0].seconds_until_purge <= 6
    time.sleep(max(0.0, pending.purge_at.timestamp() - time.time()) + 0.1)
    gone = grpc_app.characters.GetCharacters(request, metadata=read_md)
    assert [c.name for c in gone.characters] == ["Steady"]
    assert list(gone.not_found_ids) == [str(pending.id)]
    after = scrape(grpc_app.metrics_port)
    assert metric(after, "django_db_execute_total") == metric(before, "django_db_execute_total")  # both cached
    hits = metric(after, "questdb_cache_events_total", event="hit")
    assert hits - metric(before, "questdb_cache_events_total", event="hit") == 4
