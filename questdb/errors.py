"""Domain errors. Services raise them; the API maps each to its HTTP status and `code`."""


class DomainError(Exception):
    status = 400
    code = "invalid"
    message = "The request is invalid."

    def __init__(self, message: str | None = None, *, code: str | None = None, field: str | None = None):
        self.message = message or self.message
        self.code = code or self.code
        self.field = field
        super().__init__(self.message)


class InvalidInput(DomainError):
    status = 400
    code = "invalid"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    message = "Not found."


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Gone(DomainError):
    status = 410
    code = "gone"


class PreconditionFailed(DomainError):
    status = 412
    code = "precondition_failed"
    message = "The resource changed since the given ETag."


def violated_constraint(error: Exception) -> str | None:
    """The name of the database constraint an IntegrityError broke, when the driver says."""
    cause = getattr(error, "__cause__", None)
    diag = getattr(cause, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name
    return None
