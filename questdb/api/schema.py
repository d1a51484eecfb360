"""Shared OpenAPI pieces: the error body and which statuses an endpoint documents."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorBody = inline_serializer(
    name="Error",
    fields={
        "code": serializers.CharField(help_text="Stable, machine-readable error code."),
        "detail": serializers.CharField(help_text="Human-readable explanation."),
        "field": serializers.CharField(required=False, help_text="The input field at fault, if any."),
        "errors": serializers.ListField(child=serializers.DictField(), required=False),
    },
)

ERROR_RESPONSES = {
    status: OpenApiResponse(ErrorBody, description=description)
    for status, description in {
        400: "Invalid input; `field` names the offending field.",
        401: "Missing or invalid API key.",
        403: "The API key's scope does not allow this.",
        404: "Not found.",
        409: "Conflict with the current state; see `code`.",
        410: "Expired.",
        412: "If-Match did not match the current ETag.",
        413: "Request body too large.",
        429: "Throttled.",
        503: "Database busy or unavailable; retry.",
    }.items()
}


class APIKeyScheme(OpenApiAuthenticationExtension):
    target_class = "questdb.api_keys.APIKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; create keys with `manage.py create_api_key NAME --scope read|write`.",
        }
