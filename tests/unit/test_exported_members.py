"""The public API: what `import inferd` offers, and the status each error class carries."""

from __future__ import annotations

import pytest

import inferd
from inferd import errors

PUBLIC_API = [
    "BadRequestError",
    "DeadlineExceededError",
    "EvaluationError",
    "ExpressionError",
    "InferdError",
    "ListenError",
    "MethodNotAllowedError",
    "ModelError",
    "ModelNotReadyError",
    "ModelSpec",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "ServeError",
    "SpecError",
    "StartupError",
    "TensorSpec",
    "UnauthorizedError",
    "__version__",
    "load_spec",
]


def test_all_is_exactly_the_public_api() -> None:
    assert inferd.__all__ == PUBLIC_API


def test_all_is_sorted() -> None:
    assert inferd.__all__ == sorted(inferd.__all__)


@pytest.mark.parametrize("name", PUBLIC_API)
def test_every_public_name_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from inferd import {name}", namespace)
    assert namespace[name] is getattr(inferd, name)


def test_version_is_a_string() -> None:
    assert inferd.__version__ == "0.1.0"


def test_every_error_class_is_exported_from_the_package() -> None:
    for name in errors.__all__:
        assert getattr(inferd, name) is getattr(errors, name)
    assert sorted(errors.__all__) == [n for n in PUBLIC_API if n.endswith("Error")]


def test_start_up_failures_are_not_request_errors() -> None:
    """A port that is taken is the operator's problem, not an HTTP status."""
    for cls in (inferd.ListenError, inferd.StartupError):
        assert issubclass(cls, inferd.ServeError)
        assert not issubclass(cls, inferd.InferdError)


# Status and gRPC code per class, as errors.py's module docstring draws them.
STATUSES = [
    (inferd.InferdError, 500, "INTERNAL"),
    (inferd.BadRequestError, 400, "INVALID_ARGUMENT"),
    (inferd.PayloadTooLargeError, 413, "INVALID_ARGUMENT"),
    (inferd.EvaluationError, 400, "INVALID_ARGUMENT"),
    (inferd.ExpressionError, 400, "INVALID_ARGUMENT"),
    (inferd.UnauthorizedError, 401, "UNAUTHENTICATED"),
    (inferd.NotFoundError, 404, "NOT_FOUND"),
    (inferd.OverloadedError, 429, "RESOURCE_EXHAUSTED"),
    (inferd.ModelNotReadyError, 503, "UNAVAILABLE"),
    (inferd.DeadlineExceededError, 504, "DEADLINE_EXCEEDED"),
    (inferd.ModelError, 500, "INTERNAL"),
    (inferd.SpecError, 400, "INVALID_ARGUMENT"),
]


@pytest.mark.parametrize(
    ("cls", "status", "grpc_code"), STATUSES, ids=[c.__name__ for c, _, _ in STATUSES]
)
def test_error_status_codes(cls: type[inferd.InferdError], status: int, grpc_code: str) -> None:
    assert cls.status_code == status
    assert cls.grpc_code == grpc_code
    error = cls("what went wrong")
    assert error.status_code == status
    assert error.message == "what went wrong"
    assert str(error) == "what went wrong"


def test_error_hierarchy() -> None:
    for cls, _, _ in STATUSES:
        assert issubclass(cls, inferd.InferdError)
        assert issubclass(cls, Exception)
    assert issubclass(inferd.PayloadTooLargeError, inferd.BadRequestError)
    assert not issubclass(inferd.SpecError, inferd.BadRequestError)


def test_method_not_allowed_carries_the_allowed_methods() -> None:
    error = inferd.MethodNotAllowedError("/v2 takes GET, not POST", ["GET"])
    assert (error.status_code, error.grpc_code, error.allowed) == (405, "NOT_FOUND", ["GET"])


def test_overloaded_carries_retry_after() -> None:
    assert inferd.OverloadedError("full").retry_after_s == 1.0
    assert inferd.OverloadedError("full", retry_after_s=2.5).retry_after_s == 2.5


def test_about_prefixes_the_message_and_keeps_the_class() -> None:
    original = inferd.PayloadTooLargeError("too big")
    about = original.about("instance 3")
    assert type(about) is inferd.PayloadTooLargeError
    assert about.message == "instance 3: too big"
    assert str(about) == "instance 3: too big"
    assert about.status_code == 413
    assert original.message == "too big"  # the original is untouched
