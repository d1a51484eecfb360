from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action

from accounts import selectors
from accounts.api import lookups
from accounts.api.serializers import UserSerializer
from questdb.api.batch import BatchRequest, batch_ids, batch_response, batch_response_schema
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
    # A batch lookup only reads, so a read-scoped key may call it although it is a POST.
    read_only_actions = ("batch",)

    def get_queryset(self):
        return selectors.user_list(search=self.request.query_params.get("search", "")[:100])

    def retrieve(self, request, pk=None):
        return json_body(lookups.user_payload(user_id=pk))

    @extend_schema(
        description="Many users by id in one request: one item per id, in order, each the single lookup's body "
        "or its 404.",
        request=BatchRequest,
        responses={200: batch_response_schema("UserBatch", UserSerializer), 400: ERROR_RESPONSES[400]},
    )
    @action(detail=False, methods=["post"])
    def batch(self, request):
        return batch_response(lookups.user_payloads(user_ids=batch_ids(request.data)))

    @extend_schema(responses=_user)
    @action(detail=False, url_path=r"by-username/(?P<username>[^/]+)")
    def by_username(self, request, username: str):
        return json_body(lookups.user_payload_by_username(username=username))

    @extend_schema(responses=_user)
    @action(detail=False, url_path=r"by-email/(?P<email>[^/]+)")
    def by_email(self, request, email: str):
        return json_body(lookups.user_payload_by_email(email=email))
