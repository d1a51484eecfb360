"""API keys over gRPC: metadata `authorization: Api-Key <key>`, the same keys, scopes and throttle as REST."""

import time

import grpc
from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from questdb.api.auth import KEYWORD, Caller, caller_from
from questdb.api.throttling import within_rate
from questdb.grpc.errors import RpcError


def authenticate(metadata: dict, *, writes: bool) -> Caller:
    """The calling service; UNAUTHENTICATED without a valid key, PERMISSION_DENIED for a write with a read key."""
    header = metadata.get("authorization", "")
    if not header:
        raise RpcError(
            grpc.StatusCode.UNAUTHENTICATED,
            "not_authenticated",
            f"An API key is required: metadata 'authorization: {KEYWORD} <key>'.",
        )
    caller = caller_from({"HTTP_AUTHORIZATION": header})
    if caller is None:
        raise RpcError(grpc.StatusCode.UNAUTHENTICATED, "invalid_api_key", "Unknown, revoked or expired API key.")
    if writes and not caller.can_write:
        raise RpcError(
            grpc.StatusCode.PERMISSION_DENIED, "insufficient_scope", "This API key's scope does not allow this method."
        )
    return caller


def throttle(caller: Caller) -> None:
    """Count the RPC against the key's API_THROTTLE_RATE, like a REST request; RESOURCE_EXHAUSTED past it."""
    if within_rate(caller):
        return
    period = SimpleRateThrottle.parse_rate(None, settings.API_THROTTLE_RATE)[1]
    raise RpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "throttled",
        "Request was throttled.",
        retry_after=max(1, int(period - time.time() % period)),
    )
