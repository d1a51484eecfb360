"""Comparison code for the questdb benchmark, not part of questdb: plain ModelViewSets.

Every request checks the API key in the database, every read goes to the primary, and every
response is serialized anew: the straightforward DRF implementation questdb is measured against.
"""

from datetime import timedelta

from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.api.serializers import USER_FIELDS
from accounts.models import User
from characters.api.serializers import CHARACTER_FIELDS
from characters.models import Character
from sessions_app.api.serializers import SESSION_FIELDS
from sessions_app.models import Session


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = USER_FIELDS  # the same payload as questdb


class CharacterSerializer(serializers.ModelSerializer):
    seconds_until_purge = serializers.SerializerMethodField()

    class Meta:
        model = Character
        fields = CHARACTER_FIELDS  # the same payload as questdb

    def get_seconds_until_purge(self, character: Character) -> int | None:
        return character.seconds_until_purge()


class SessionSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)

    class Meta:
        model = Session
        fields = SESSION_FIELDS  # the same payload as questdb


class UserViewSet(viewsets.ModelViewSet):
    queryset = User.objects.all()
    serializer_class = UserSerializer

    @action(detail=False, url_path=r"by-username/(?P<username>[^/]+)")
    def by_username(self, request, username: str):
        return Response(self.get_serializer(get_object_or_404(User, username__iexact=username)).data)

    @action(detail=False, url_path=r"by-email/(?P<email>[^/]+)")
    def by_email(self, request, email: str):
        return Response(self.get_serializer(get_object_or_404(User, email__iexact=email)).data)


class CharacterViewSet(viewsets.ModelViewSet):
    queryset = Character.objects.all()
    serializer_class = CharacterSerializer

    def get_queryset(self):
        characters = super().get_queryset()
        user = self.request.query_params.get("user")
        return characters.filter(user_id=user) if user else characters


class SessionViewSet(viewsets.ModelViewSet):
    queryset = Session.objects.select_related("user")
    serializer_class = SessionSerializer

    @action(detail=False, methods=["post"])
    def lookup(self, request):
        session = get_object_or_404(self.get_queryset(), token=str(request.data.get("token", "")))
        return Response(self.get_serializer(session).data)

    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        session = self.get_object()
        session.expires_at = timezone.now() + timedelta(days=7)
        session.save()
        return Response(self.get_serializer(session).data)
