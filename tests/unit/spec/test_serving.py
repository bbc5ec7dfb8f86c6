"""How a model is run: batching bounds and the python backend's module and class."""

from __future__ import annotations

from inferd.spec import parse_spec
from tests.unit.spec.documents import error


def test_negative_batching_refused() -> None:
    assert "batching.max_batch_size" in error({"name": "m", "batching": {"max_batch_size": -1}})


def test_python_backend_artifact_is_its_module() -> None:
    spec = parse_spec(
        {
            "name": "py",
            "backend": "python",
            "inputs": [{"name": "x", "datatype": "FP32"}],
            "outputs": [{"name": "y", "datatype": "FP32"}],
            "python": {"module": "impl.py", "class": "Impl"},
        }
    )
    assert spec.artifact_name() == "impl.py"
    assert spec.python is not None and spec.python.class_name == "Impl"
