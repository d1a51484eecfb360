from django.http import HttpResponse

from questdb.cache.records import Payload


def json_body(payload: Payload, *, status: int = 200) -> HttpResponse:
    """A response from a cached lookup's already-rendered JSON body (hits skip serializers and renderers)."""
    return HttpResponse(payload.body, status=status, content_type="application/json", headers=payload.headers)
