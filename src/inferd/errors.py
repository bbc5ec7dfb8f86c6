"""Every failure a user can cause, each with its HTTP status and gRPC code.

    InferdError                      500  INTERNAL
    ├── BadRequestError              400  INVALID_ARGUMENT   (bad input: shape, names, values)
    │   ├── PayloadTooLargeError     413  INVALID_ARGUMENT   (body over the configured limit)
    │   └── EvaluationError          400  INVALID_ARGUMENT   (a rule cannot be computed on it)
    ├── UnauthorizedError            401  UNAUTHENTICATED
    ├── NotFoundError                404  NOT_FOUND          (unknown model or version)
    │   └── MethodNotAllowedError    405  NOT_FOUND          (a route that takes other methods)
    ├── ConflictError                409  ALREADY_EXISTS     (a request id used twice)
    ├── OverloadedError              429  RESOURCE_EXHAUSTED (queue full; carries Retry-After)
    ├── ModelNotReadyError           503  UNAVAILABLE        (not loaded, failed, replica lost)
    ├── DeadlineExceededError        504  DEADLINE_EXCEEDED  (the request's deadline passed)
    ├── ModelError                   500  INTERNAL           (the model itself crashed)
    └── SpecError                    400  INVALID_ARGUMENT   (a model.yaml or artifact is wrong)
        └── ExpressionError          400  INVALID_ARGUMENT   (a decide rule cannot be parsed)

    ServeError                                               (`inferd serve` cannot start)
    ├── ListenError                                          (the address cannot be listened on)
    └── StartupError                                         (loading models or the store failed)

Messages say what was wrong and how to fix it; transports render them, nothing else does.
"""

from __future__ import annotations

import copy
from typing import Self


class InferdError(Exception):
    """Base of every error inferd reports to a user."""

    status_code: int = 500
    grpc_code: str = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def about(self, subject: str) -> Self:
        """The same error, its message prefixed with what it concerns (e.g. "instance 3")."""
        clone = copy.copy(self)
        clone.message = f"{subject}: {self.message}"
        clone.args = (clone.message,)
        return clone


class BadRequestError(InferdError):
    status_code = 400
    grpc_code = "INVALID_ARGUMENT"


class PayloadTooLargeError(BadRequestError):
    status_code = 413


class EvaluationError(BadRequestError):
    """A decide rule that parsed but cannot be computed on this request's values."""


class UnauthorizedError(InferdError):
    status_code = 401
    grpc_code = "UNAUTHENTICATED"


class NotFoundError(InferdError):
    status_code = 404
    grpc_code = "NOT_FOUND"


class MethodNotAllowedError(NotFoundError):
    status_code = 405

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class ConflictError(InferdError):
    status_code = 409
    grpc_code = "ALREADY_EXISTS"


class OverloadedError(InferdError):
    status_code = 429
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelNotReadyError(InferdError):
    status_code = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        """Set when it is expected to pass soon (a replica lost mid-request): Retry-After."""


class DeadlineExceededError(InferdError):
    status_code = 504
    grpc_code = "DEADLINE_EXCEEDED"


class ModelError(InferdError):
    """The model raised while running a batch; the request id lets the user find the log."""

    status_code = 500
    grpc_code = "INTERNAL"


class SpecError(InferdError):
    """A model folder is wrong: its model.yaml, labels or artifact."""

    status_code = 400
    grpc_code = "INVALID_ARGUMENT"


class ExpressionError(SpecError):
    """A decide rule that cannot be parsed; `position` is the 0-based offset of the fault."""

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.position = position


class ServeError(Exception):
    """The server cannot start; not a request's failure, so it carries no status."""


class ListenError(ServeError):
    """The address cannot be listened on (taken, not this machine's, not resolvable)."""


class StartupError(ServeError):
    """Loading the models or opening the store failed; the log has the traceback."""


__all__ = [
    "BadRequestError",
    "DeadlineExceededError",
    "EvaluationError",
    "ExpressionError",
    "InferdError",
    "ListenError",
    "MethodNotAllowedError",
    "ModelError",
    "ModelNotReadyError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "ServeError",
    "SpecError",
    "StartupError",
    "UnauthorizedError",
]
