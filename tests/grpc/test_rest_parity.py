"""REST and gRPC answer the same rows with the same values, field by field."""

from datetime import timedelta

import pytest
from django.utils import timezone

from characters.models import Character
from questdb.v1 import characters_pb2 as cpb
from questdb.v1 import sessions_pb2 as spb
from questdb.v1 import users_pb2 as upb
from sessions_app.models import Session
from tests.grpc.helpers import assert_same

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
RENAMES = {"user": "user_id"}


def test_rest_and_grpc_agree_field_by_field(grpc_app, api, make_user, write_key):
    metadata = (("authorization", f"Api-Key {write_key}"),)
    user = make_user(username="Twin", email="twin@example.com", image="https://example.com/a.png", role="gm")
    hero = Character.objects.create(
        user=user,
        name="Twin_Hero",
        money=1234,
        inventory=[{"slot": 1, "item_id": 9, "quantity": 2}],
        skills=[{"skill_id": 4, "level": 3}],
    )
    fading = Character.objects.create(
        user=user, name="Fading", deleted_at=timezone.now(), purge_at=timezone.now() + timedelta(hours=2)
    )
    session = Session.objects.create(
        user=user, token="twin-token", expires_at=timezone.now() + timedelta(hours=1), ip_address="10.0.0.1"
    )

    rest_user = api.get(f"/api/v1/users/{user.id}/").json()
    grpc_user = grpc_app.users.GetUser(upb.GetUserRequest(id=str(user.id)), metadata=metadata).user
    assert_same(grpc_user, rest_user)
    assert grpc_user.image == "https://example.com/a.png"

    for character in (hero, fading):
        response = api.get(f"/api/v1/characters/{character.id}/")
        got = grpc_app.characters.GetCharacter(cpb.GetCharacterRequest(id=str(character.id)), metadata=metadata)
        rest = dict(response.json())
        countdown = rest.pop("seconds_until_purge")  # moves: compared within a second
        assert_same(got.character, rest, renames=RENAMES)
        assert got.character.etag == response["ETag"]
    assert abs(got.character.seconds_until_purge - countdown) <= 1

    rest_list = api.get(f"/api/v1/characters/?user={user.id}").json()["results"]
    grpc_list = grpc_app.characters.GetCharacterList(
        cpb.GetCharacterListRequest(user_id=str(user.id)), metadata=metadata
    )
    assert len(grpc_list.characters) == len(rest_list) == 2
    for message, rest in zip(grpc_list.characters, rest_list, strict=True):
        rest.pop("seconds_until_purge")
        assert_same(message, rest, renames=RENAMES)

    rest_session = api.post("/api/v1/sessions/lookup/", {"token": "twin-token"}, content_type="application/json").json()
    grpc_session = grpc_app.sessions.GetSessionByToken(
        spb.GetSessionByTokenRequest(token="twin-token"), metadata=metadata
    )
    assert_same(grpc_session.session, rest_session)
    assert grpc_session.session.ip_address == "10.0.0.1"

    # Writes: the same shape from the services' own answer.
    rest_refresh = api.post(f"/api/v1/sessions/{session.id}/refresh/").json()
    grpc_refresh = grpc_app.sessions.RefreshSession(spb.RefreshSessionRequest(id=str(session.id)), metadata=metadata)
    assert set(rest_refresh) == {f.name for f in spb.Session.DESCRIPTOR.fields}
    assert grpc_refresh.session.expires_at.ToDatetime() >= timezone.datetime.fromisoformat(
        rest_refresh["expires_at"].replace("Z", "")
    )
