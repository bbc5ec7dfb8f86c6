"""The Python backend: a user's callable class, run only with an explicit trust flag.

The class lives in the version folder (`model.py` by default). It may define
`load(self, version_dir: pathlib.Path)`; it must define
`__call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]`, taking and
returning whole batches.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from inferd.errors import SpecError
from inferd.spec import ModelSpec, PythonSpec, TensorSpec


class PythonBackend:
    def __init__(
        self,
        model: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
    ) -> None:
        self._model = model
        self.inputs = inputs
        self.outputs = outputs

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._model(inputs)
        if not isinstance(results, dict):
            raise TypeError(f"the model returned {type(results).__name__}, not a dict of arrays")
        return {name: np.asarray(value) for name, value in results.items()}

    def close(self) -> None:
        close = getattr(self._model, "close", None)
        if callable(close):
            close()


def _with_batch_dim(tensors: list[TensorSpec], batched: bool) -> list[TensorSpec]:
    if not batched:
        return tensors
    return [t.model_copy(update={"shape": [-1, *t.shape]}) for t in tensors]


def load(spec: ModelSpec, version_dir: Path, trust_code: bool) -> PythonBackend:
    if not trust_code:
        raise SpecError(
            f"model {spec.name!r} uses the python backend, which runs code from the model "
            "folder; serve it with --trust-code if you trust that code"
        )
    options = spec.python or PythonSpec()
    path = version_dir / options.module
    if not path.exists():
        raise SpecError(f"model {spec.name!r}: {path} does not exist")
    module_name = f"inferd_user_model_{spec.name}_{version_dir.name}".replace("-", "_")
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise SpecError(f"model {spec.name!r}: {path} is not a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    cls: Any = getattr(module, options.class_name, None)
    if cls is None:
        raise SpecError(f"model {spec.name!r}: {path} defines no class {options.class_name!r}")
    model = cls()
    if hasattr(model, "load"):
        model.load(version_dir)
    if not callable(model):
        raise SpecError(f"model {spec.name!r}: class {options.class_name} must define __call__")
    return PythonBackend(
        model,
        _with_batch_dim(spec.inputs, spec.batched),
        _with_batch_dim(spec.outputs, spec.batched),
    )
