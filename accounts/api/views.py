from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action

from accounts import selectors
from accounts.api import lookups
from accounts.api.serializers import UserSerializer
from questdb.api.responses import json_body
from questdb.api.schema import ERROR_RESPONSES

_user = {200: UserSerializer, 404: ERROR_RESPONSES[404]}


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("search", str, description="Part of a username, email or name.")],
        responses={200: UserSerializer(many=True), 400: ERROR_RESPONSES[400]},
    ),
    retrieve=extend_schema(responses=_user),
)
class UserViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Game users, read-only: the identity app writes them and staff edit them in the admin."""

    serializer_class = UserSerializer
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return selectors.user_list(search=self.request.query_params.get("search", "")[:100])

    def retrieve(self, request, pk=None):
        return json_body(lookups.user_payload(user_id=pk))

    @extend_schema(responses=_user)
    @action(detail=False, url_path=r"by-username/(?P<username>[^/]+)")
    def by_username(self, request, username: str):
        return json_body(lookups.user_payload_by_username(username=username))

    @extend_schema(responses=_user)
    @action(detail=False, url_path=r"by-email/(?P<email>[^/]+)")
    def by_email(self, request, email: str):
        return json_body(lookups.user_payload_by_email(email=email))
