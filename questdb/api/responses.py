from django.http import HttpResponse


def json_body(body: bytes, *, status: int = 200, headers: dict | None = None) -> HttpResponse:
    """A response from an already-rendered JSON body (cache hits skip serializers and renderers)."""
    return HttpResponse(body, status=status, content_type="application/json", headers=headers)
