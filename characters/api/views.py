import contextlib

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from characters import selectors, services
from characters.api import lookups
from characters.api.serializers import (
    CharacterCreateRequest,
    CharacterSerializer,
    CharacterUpdateRequest,
)
from questdb.api.batch import BatchRequest, batch_ids, batch_response, batch_response_schema
from questdb.api.responses import json_body
from questdb.api.schema import ERROR_RESPONSES
from questdb.cache.hit_path import NotServedFromCache
from questdb.errors import InvalidInput

E = ERROR_RESPONSES


def _json_object(data) -> dict:
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.", code="invalid_body")
    return data


def _with_etag(character, *, status_code: int = 200, headers: dict | None = None) -> Response:
    return Response(
        CharacterSerializer(character).data, status=status_code, headers={"ETag": character.etag(), **(headers or {})}
    )


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("user", str, description="Owner's user id: that user's characters, oldest first.")
        ],
        responses={200: CharacterSerializer(many=True), 400: E[400]},
    ),
    retrieve=extend_schema(responses={200: CharacterSerializer, 404: E[404]}),
    create=extend_schema(
        request=CharacterCreateRequest, responses={201: CharacterSerializer, 400: E[400], 409: E[409], 413: E[413]}
    ),
    partial_update=extend_schema(
        request=CharacterUpdateRequest,
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, description="ETag from a GET.")],
        responses={200: CharacterSerializer, 400: E[400], 404: E[404], 409: E[409], 412: E[412]},
    ),
    destroy=extend_schema(
        description="Marks the character for deletion; it is purged after the grace period unless restored.",
        responses={200: CharacterSerializer, 404: E[404]},
    ),
)
class CharacterViewSet(viewsets.GenericViewSet):
    serializer_class = CharacterSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = "[^/]+"
    # A batch lookup only reads, so a read-scoped key may call it although it is a POST.
    read_only_actions = ("batch",)

    def get_queryset(self):
        return selectors.character_list(user_id=self.request.query_params.get("user"))

    def list(self, request):
        user_id = request.query_params.get("user")
        only_user_filter = set(request.query_params) <= {"user"}
        if user_id is not None and only_user_filter:
            with contextlib.suppress(NotServedFromCache):  # more than a page: page them from the database
                return json_body(lookups.characters_of_user_page(user_id=user_id))
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CharacterSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return json_body(lookups.character_payload(character_id=pk))

    def create(self, request):
        data = dict(_json_object(request.data))
        character = services.character_create(user_id=data.pop("user", None), name=data.pop("name", None), **data)
        location = request.build_absolute_uri(reverse("character-detail", args=[character.pk]))
        return _with_etag(character, status_code=status.HTTP_201_CREATED, headers={"Location": location})

    def partial_update(self, request, pk=None):
        character = services.character_update(
            character_id=pk, changes=_json_object(request.data), if_match=request.headers.get("If-Match")
        )
        return _with_etag(character)

    def destroy(self, request, pk=None):
        return _with_etag(services.character_schedule_deletion(character_id=pk))

    @extend_schema(
        description="Many characters by id in one request: one item per id, in order, each the single lookup's "
        "body and ETag, or its 404.",
        request=BatchRequest,
        responses={200: batch_response_schema("CharacterBatch", CharacterSerializer), 400: E[400]},
    )
    @action(detail=False, methods=["post"])
    def batch(self, request):
        return batch_response(lookups.character_payloads(character_ids=batch_ids(request.data)))

    @extend_schema(request=None, responses={200: CharacterSerializer, 404: E[404], 409: E[409]})
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        return _with_etag(services.character_restore(character_id=pk))
