"""Backends: load an artifact for a device and run a batch of named numpy arrays.

A backend is chosen by the spec's `backend:` key. Modules are imported only when a model
needs them, so a heavy runtime costs nothing until it is used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from inferd.errors import SpecError
from inferd.spec import ModelSpec, TensorSpec


class Backend(Protocol):
    """A loaded model. Tensor shapes are the artifact's own (batch dimension included)."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; may be called from several worker threads at once."""
        ...

    def close(self) -> None: ...


class BackendLoader(Protocol):
    def __call__(self, spec: ModelSpec, version_dir: Path, trust_code: bool) -> Backend: ...


_REGISTRY: dict[str, str] = {
    "onnx": "inferd.backends.onnx",
    "python": "inferd.backends.python",
}


def load_backend(spec: ModelSpec, version_dir: Path, trust_code: bool = False) -> Backend:
    """Load the artifact in `version_dir` with the backend its spec names."""
    module_name = _REGISTRY.get(spec.backend)
    if module_name is None:
        raise SpecError(
            f"model {spec.name!r}: unknown backend {spec.backend!r}; use one of "
            f"{', '.join(sorted(_REGISTRY))}"
        )
    loader: BackendLoader = importlib.import_module(module_name).load
    return loader(spec, version_dir, trust_code)
