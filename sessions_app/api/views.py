from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from questdb.api.responses import json_body
from questdb.api.schema import ERROR_RESPONSES as E
from questdb.api.schema import ErrorBody
from sessions_app import services
from sessions_app.api import lookups
from sessions_app.api.serializers import SessionLookupRequest, SessionSerializer

_banned = OpenApiResponse(
    ErrorBody,
    description="`user_banned`: the session's user is under a ban in force (or the key's scope is too narrow).",
)
_session = {200: SessionSerializer, 403: _banned, 404: E[404], 410: E[410]}


class SessionViewSet(viewsets.GenericViewSet):
    """Login sessions, created by the identity app. Tokens are accepted, never returned."""

    serializer_class = SessionSerializer
    lookup_value_regex = "[^/]+"
    # A lookup only reads, so a read-scoped key may call it although it is a POST.
    read_only_actions = ("lookup",)

    @extend_schema(responses=_session)
    def retrieve(self, request, pk=None):
        return json_body(lookups.session_payload(session_id=pk))

    @extend_schema(request=SessionLookupRequest, responses={**_session, 400: E[400]})
    @action(detail=False, methods=["post"])
    def lookup(self, request):
        token = request.data.get("token") if isinstance(request.data, dict) else None
        return json_body(lookups.session_payload_by_token(token=token))

    @extend_schema(request=None, responses=_session)
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        return Response(SessionSerializer(services.session_refresh(session_id=pk)).data)
