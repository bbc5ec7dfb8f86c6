"""inferd: an inference server and toolkit.

A trained model becomes a service in six stages — decode, preprocess, model, predict,
postprocess, decide — served over the Open Inference Protocol (V2), KServe V1 and more.
"""

from inferd.errors import (
    BadRequestError,
    DeadlineExceededError,
    EvaluationError,
    ExpressionError,
    InferdError,
    ListenError,
    MethodNotAllowedError,
    ModelError,
    ModelNotReadyError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    ServeError,
    SpecError,
    StartupError,
    UnauthorizedError,
)
from inferd.spec import ModelSpec, TensorSpec, load_spec

__version__ = "0.1.0"

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
