"""The python backend: user code, loaded only with --trust-code."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from inferd.backends import load_backend
from inferd.errors import SpecError
from inferd.spec import ModelSpec, parse_spec

MODEL_PY = textwrap.dedent(
    """
    from pathlib import Path

    import numpy as np


    class Model:
        def __init__(self):
            self.offset = None
            self.loaded_from = None

        def load(self, version_dir):
            self.loaded_from = version_dir
            self.offset = float((Path(version_dir) / "offset.txt").read_text())

        def __call__(self, inputs):
            return {"y": inputs["x"] * 2 + self.offset, "n": [len(inputs["x"])]}
    """
)


def _spec(**extra: object) -> ModelSpec:
    return parse_spec(
        {
            "name": "pymodel",
            "backend": "python",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [2]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [2]}],
            **extra,
        }
    )


@pytest.fixture
def version_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "pymodel" / "1"
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(MODEL_PY, encoding="utf-8")
    (folder / "offset.txt").write_text("0.5", encoding="utf-8")
    return folder


def test_refused_without_trust_code(version_dir: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_backend(_spec(), version_dir)
    assert "model 'pymodel' uses the python backend" in caught.value.message
    assert "--trust-code" in caught.value.message


def test_loads_class_calls_load_and_runs_batches(version_dir: Path) -> None:
    backend = load_backend(_spec(), version_dir, trust_code=True)
    model = backend._model  # type: ignore[attr-defined]
    assert model.loaded_from == version_dir
    assert model.offset == 0.5
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
    out = backend.run({"x": x})
    np.testing.assert_allclose(out["y"], x * 2 + 0.5)
    assert isinstance(out["n"], np.ndarray)  # plain lists come back as arrays
    assert out["n"].tolist() == [3]


def test_declared_tensors_gain_the_batch_dimension(version_dir: Path) -> None:
    backend = load_backend(_spec(), version_dir, trust_code=True)
    assert [(t.name, t.shape) for t in backend.inputs] == [("x", [-1, 2])]
    assert [(t.name, t.shape) for t in backend.outputs] == [("y", [-1, 2])]


def test_unbatched_tensors_keep_their_shape(version_dir: Path) -> None:
    spec = _spec(batching={"max_batch_size": 0})
    backend = load_backend(spec, version_dir, trust_code=True)
    assert backend.inputs[0].shape == [2]


def test_custom_module_and_class(version_dir: Path) -> None:
    (version_dir / "impl.py").write_text(
        "class Doubler:\n    def __call__(self, inputs):\n        return {'y': inputs['x'] * 2}\n",
        encoding="utf-8",
    )
    spec = _spec(python={"module": "impl.py", "class": "Doubler"})
    backend = load_backend(spec, version_dir, trust_code=True)
    np.testing.assert_array_equal(backend.run({"x": np.array([[1.0, 4.0]])})["y"], [[2.0, 8.0]])


def test_missing_class(version_dir: Path) -> None:
    spec = _spec(python={"class": "Nope"})
    with pytest.raises(SpecError) as caught:
        load_backend(spec, version_dir, trust_code=True)
    assert "defines no class 'Nope'" in caught.value.message
    assert str(version_dir / "model.py") in caught.value.message


def test_missing_module(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"model\.py does not exist"):
        load_backend(_spec(), tmp_path, trust_code=True)


def test_class_without_call(version_dir: Path) -> None:
    (version_dir / "model.py").write_text("class Model:\n    pass\n", encoding="utf-8")
    with pytest.raises(SpecError, match="class Model must define __call__"):
        load_backend(_spec(), version_dir, trust_code=True)


def test_model_returning_a_non_dict(version_dir: Path) -> None:
    (version_dir / "model.py").write_text(
        "class Model:\n    def __call__(self, inputs):\n        return [1, 2]\n", encoding="utf-8"
    )
    backend = load_backend(_spec(), version_dir, trust_code=True)
    with pytest.raises(TypeError, match="the model returned list, not a dict of arrays"):
        backend.run({"x": np.zeros((1, 2))})


def test_close_calls_the_models_close(version_dir: Path) -> None:
    (version_dir / "model.py").write_text(
        textwrap.dedent(
            """
            class Model:
                closed = 0

                def __call__(self, inputs):
                    return inputs

                def close(self):
                    Model.closed += 1
            """
        ),
        encoding="utf-8",
    )
    backend = load_backend(_spec(), version_dir, trust_code=True)
    backend.close()
    assert type(backend._model).closed == 1  # type: ignore[attr-defined]
