"""One mapping from questdb's errors to gRPC status codes, with questdb's `code` alongside.

Every failed RPC carries, in its trailing metadata, `questdb-error-code` (the same stable code as the
REST body's `code`), `questdb-error-field` when one input field is at fault, `retry-after` (seconds)
when retrying later can help, and `grpc-status-details-bin`: a google.rpc.Status whose details hold an
ErrorInfo (reason = the code, domain `questdb`), a BadRequest naming the field, and a RetryInfo.
"""

import logging
from dataclasses import dataclass

import grpc
from django.db import InterfaceError, OperationalError
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from psycopg_pool import PoolTimeout

from questdb.errors import Conflict, DomainError, Forbidden, Gone, InvalidInput, NotFound, PreconditionFailed

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "questdb"
CODE_KEY = "questdb-error-code"
FIELD_KEY = "questdb-error-field"
RETRY_AFTER_KEY = "retry-after"
DETAILS_KEY = "grpc-status-details-bin"

# Domain error classes, most specific first; a `code` listed in BY_CODE overrides its class.
BY_CLASS = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (PreconditionFailed, grpc.StatusCode.ABORTED),  # a stale version: re-read and retry
    (Gone, grpc.StatusCode.FAILED_PRECONDITION),  # an expired session
    (Forbidden, grpc.StatusCode.PERMISSION_DENIED),  # a banned user's session
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),  # the character limit, pending deletion
)
BY_CODE = {"name_taken": grpc.StatusCode.ALREADY_EXISTS}
# Domain field names that the protos spell differently.
PROTO_FIELD_NAMES = {"user": "user_id"}


@dataclass
class RpcError(Exception):
    """A failure to report as a gRPC status: `status`, questdb's `code`, a human `detail`."""

    status: grpc.StatusCode
    code: str
    detail: str
    field: str | None = None
    retry_after: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.detail)


def from_exception(error: Exception) -> RpcError | None:
    """The status an exception means for the caller; None for an unexpected one (INTERNAL, logged)."""
    if isinstance(error, RpcError):
        return error
    if isinstance(error, DomainError):
        status = BY_CODE.get(error.code) or next(s for cls, s in BY_CLASS if isinstance(error, cls))
        field = PROTO_FIELD_NAMES.get(error.field, error.field) if error.field else None
        return RpcError(status, error.code, error.message, field)
    if isinstance(error, (OperationalError, InterfaceError)):
        if isinstance(error.__cause__, PoolTimeout):
            logger.warning("database pool exhausted")
            return RpcError(grpc.StatusCode.UNAVAILABLE, "database_busy", "All database connections are busy.", None, 1)
        logger.error("database unavailable: %s", error.__class__.__name__)
        return RpcError(grpc.StatusCode.UNAVAILABLE, "database_unavailable", "The database is unavailable.", None, 1)
    return None


INTERNAL = RpcError(grpc.StatusCode.INTERNAL, "server_error", "An unexpected error occurred; it has been logged.")


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple) -> None:
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata


def status_of(error: RpcError, *, extra_metadata: tuple = ()) -> grpc.Status:
    """The grpc.Status to abort with: code, detail, and the trailing metadata described above."""
    details = [error_details_pb2.ErrorInfo(reason=error.code, domain=ERROR_DOMAIN)]
    metadata = [(CODE_KEY, error.code)]
    if error.field:
        details[0].metadata["field"] = error.field
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.detail)
                ]
            )
        )
        metadata.append((FIELD_KEY, error.field))
    if error.retry_after is not None:
        details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=error.retry_after)))
        metadata.append((RETRY_AFTER_KEY, str(error.retry_after)))
    status = status_pb2.Status(code=getattr(code_pb2, error.status.name), message=error.detail)
    for detail in details:
        status.details.add().Pack(detail)
    metadata.append((DETAILS_KEY, status.SerializeToString()))
    return _Status(error.status, error.detail, (*extra_metadata, *metadata))
