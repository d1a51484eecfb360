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
    target_class = "questdb.api.auth.APIKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; create keys with `manage.py create_api_key NAME --scope read|write`.",
        }


_COMMON_ERRORS = {
    # Any path or query can hold text the database cannot store (unsafe_text).
    "400": "Invalid input; see `code`.",
    "401": "Missing or invalid API key.",
    "403": "The API key's scope does not allow this.",
    "414": "Request URI too long (answered by the HTTP server in front of questdb).",
    "429": "Throttled.",
    "503": "Database busy or unavailable; retry.",
}
_BODY_ERRORS = {"400": "Malformed body.", "413": "Request body too large.", "415": "Body is not JSON."}


def add_common_responses(result, generator, request, public):
    """Every API operation can answer these; document them once instead of on every view."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            extra = {**_COMMON_ERRORS, **(_BODY_ERRORS if method in ("post", "patch", "put") else {})}
            if "{" in path:
                extra["404"] = "Not found."
            elif method == "get":
                extra["404"] = "No such page of results."
            for status, description in extra.items():
                responses.setdefault(status, {"description": description, "content": error})
    return result
