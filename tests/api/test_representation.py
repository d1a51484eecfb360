"""The hand-written representations say exactly what DRF's generic ModelSerializer would."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers

from accounts.api.serializers import UserSerializer
from characters import services
from characters.api.serializers import CharacterSerializer
from sessions_app.api.serializers import SessionSerializer
from sessions_app.models import Session

pytestmark = pytest.mark.django_db


def _generic(serializer_class, instance) -> dict:
    # The declared fields, rendered by DRF itself rather than by the class's own to_representation.
    return serializers.ModelSerializer.to_representation(serializer_class(), instance)


def _json(data):
    from rest_framework.renderers import JSONRenderer

    return JSONRenderer().render(data)


def test_user_character_and_session_representations_match_drf(make_user):
    user = make_user(image="https://example.com/a.png", name="Ünïcode Näme")
    character = services.character_create(user_id=user.id, name="Mirror", money=7)
    services.character_schedule_deletion(character_id=character.id)
    character.refresh_from_db()
    session = Session.objects.create(user=user, token="t", expires_at=timezone.now() + timedelta(hours=1))
    for serializer_class, instance in [
        (UserSerializer, user),
        (CharacterSerializer, character),
        (SessionSerializer, Session.objects.select_related("user").get(id=session.id)),
    ]:
        assert _json(serializer_class(instance).data) == _json(_generic(serializer_class, instance))
