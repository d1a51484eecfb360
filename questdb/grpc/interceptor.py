"""The per-RPC scope every questdb method runs in, as a Django request runs in its middleware.

In order: a request id (the caller's `x-request-id` when sane), the consistency token
(`x-consistency-token`, as the REST header), the API key and its scope, the deadline, the throttle;
then the servicer inside the same read-routing scope as a REST request (`questdb.db.router.request_scope`),
with Django's database connections handed back to their pools before and after, and a read that a
dead replica broke run once more on the primary. Every answer has `x-request-id` in its trailing
metadata (sent with the answer and status, at no extra cost), and after a write `x-consistency-token` in
its initial metadata; a failure aborts with the status `errors` maps it to.
When the caller's deadline passes or it cancels, the database query the RPC waits for is
cancelled. Each RPC ends with the same log line and metrics as an HTTP request. Tokens and bodies are never logged.
"""

import contextlib
import logging
import threading
import time

import grpc
from django.db import connections

from questdb.db import router as routing
from questdb.db.middleware import fall_back_to_primary
from questdb.grpc import auth, errors
from questdb.grpc.messages import passing_encoded
from questdb.grpc.registry import RpcService
from questdb.observability import record_request, request_id_for

logger = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
CONSISTENCY_KEY = routing.CONSISTENCY_HEADER.lower()
LOG_METHOD = "GRPC"


class QuestdbInterceptor(grpc.ServerInterceptor):
    def __init__(self, services: list[RpcService]) -> None:
        # full method path -> whether it writes
        self.methods = {
            service.method_path(method.name): method.name in service.writes
            for service in services
            for method in _descriptor(service.name).methods
        }
        # full method path -> its wrapped handler, built on its first call: the server's handlers are fixed
        # once it starts, and grpcio asks the interceptor again on every call.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation, handler_call_details):
        path = handler_call_details.method
        wrapped = self._wrapped.get(path)
        if wrapped is not None:
            return wrapped
        handler = continuation(handler_call_details)
        if handler is None or path not in self.methods or handler.unary_unary is None:
            return handler  # health, reflection: no key needed
        behavior, writes = handler.unary_unary, self.methods[path]

        def run(request, context):
            return _run(path, writes, behavior, request, context)

        wrapped = self._wrapped[path] = grpc.unary_unary_rpc_method_handler(
            run,
            request_deserializer=handler.request_deserializer,
            response_serializer=passing_encoded(handler.response_serializer),
        )
        return wrapped


def _descriptor(service_name: str):
    from google.protobuf import descriptor_pool

    return descriptor_pool.Default().FindServiceByName(service_name)


def _run(path: str, writes: bool, behavior, request, context: grpc.ServicerContext):
    started = time.perf_counter()
    metadata = dict(context.invocation_metadata())
    request_id = request_id_for(metadata.get(REQUEST_ID_KEY, ""))
    caller, status = None, grpc.StatusCode.OK
    wrappers = _thread_connections()
    _close_old_connections(wrappers)
    running = _cancel_queries_when_abandoned(context, wrappers)
    try:
        min_lsn = _consistency_floor(metadata)
        caller = auth.authenticate(metadata, writes=writes)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise errors.RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline_exceeded", "The deadline has passed.")
        auth.throttle(caller)
        with routing.request_scope(min_lsn=min_lsn) as state:
            response = _call(behavior, request, context)
            token = None
            if state.wrote:
                lsn = state.commit_lsn if state.commit_lsn is not None else routing.primary_lsn()
                token = routing.format_lsn(lsn) if lsn is not None else None
        if token is not None:
            # Only after a write: sending initial metadata of its own costs the worker a round of its own.
            context.send_initial_metadata(((CONSISTENCY_KEY, token),))
        # Sent with the answer and its status, in the same batch.
        context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
        return response
    except Exception as error:
        failure = errors.from_exception(error)
        if failure is None:
            logger.exception("unexpected error in %s", path, extra={"request_id": request_id})
            failure = errors.INTERNAL
        status = failure.status
        context.abort_with_status(errors.status_of(failure, extra_metadata=((REQUEST_ID_KEY, request_id),)))
    finally:
        running.clear()
        _close_old_connections(wrappers)
        record_request(
            method=LOG_METHOD,
            path=path,
            route=path,
            status=status.name,
            duration=time.perf_counter() - started,
            request_id=request_id,
            caller=caller.name if caller else None,
        )


class _Running:
    __slots__ = ("answering",)

    def __init__(self) -> None:
        self.answering = True

    def clear(self) -> None:
        self.answering = False


_threads = threading.local()


def _thread_connections() -> list:
    """This thread's connection wrappers: Django makes them once per thread and alias, so they are kept."""
    wrappers = getattr(_threads, "connections", None)
    if wrappers is None:
        wrappers = _threads.connections = [connections[alias] for alias in connections]
    return wrappers


def _close_old_connections(wrappers: list) -> None:
    """Django's close_old_connections for this thread's wrappers: without an open connection there is
    nothing to check (a connection goes back to its pool after each RPC), so most RPCs skip it."""
    for wrapper in wrappers:
        if wrapper.connection is not None:
            wrapper.close_if_unusable_or_obsolete()


def _cancel_queries_when_abandoned(context: grpc.ServicerContext, wrappers: list) -> _Running:
    """Once the RPC ends without its answer (deadline passed, caller cancelled), cancel the query it is
    still waiting for (on this thread's `wrappers`: the callback runs on another thread), so a lock wait
    or slow query does not outlive the caller's deadline."""
    running = _Running()

    def on_termination() -> None:
        if running.answering:
            for wrapper in wrappers:
                connection = wrapper.connection
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.cancel_safe(timeout=1)

    context.add_callback(on_termination)
    return running


def _consistency_floor(metadata: dict) -> int:
    token = metadata.get(CONSISTENCY_KEY)
    if not token:
        return 0
    try:
        return routing.parse_lsn(token)
    except ValueError:
        raise errors.RpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_consistency_token",
            f"{CONSISTENCY_KEY} must look like 0/16B3748.",
            field=CONSISTENCY_KEY,
        ) from None


def _call(behavior, request, context):
    try:
        return behavior(request, context)
    except Exception as error:
        if fall_back_to_primary(error):  # a replica died under a read: once more, on the primary
            return behavior(request, context)
        raise
