"""Domain errors. Services raise them; the API maps each to its HTTP status and `code`."""


class DomainError(Exception):
    status = 400
    code = "invalid"
    message = "The request is invalid."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        field: str | None = None,
        errors: list["DomainError"] | None = None,
    ):
        self.message = message or self.message
        self.code = code or self.code
        self.field = field
        # Every problem found, when there are several (this error is the first of them).
        self.errors = errors or []
        super().__init__(self.message)

    @classmethod
    def combine(cls, errors: list["DomainError"]) -> "DomainError":
        """One error standing for several: the first one's message and code, all of them in `errors`."""
        first = errors[0]
        several = errors if len(errors) > 1 else None
        return type(first)(first.message, code=first.code, field=first.field, errors=several)


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
