"""Regression postprocessing: inverse scaling and names."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from inferd.errors import ModelError
from inferd.spec import RegressStage
from inferd.stages import regress


def _post(**options: Any) -> Any:
    return regress.build(RegressStage(type="regress", **options), "y")


def test_single_value_without_names() -> None:
    prediction = _post().run({"y": np.array([2.5], dtype=np.float32)}, {})
    assert prediction.fields == {"value": 2.5}
    assert prediction.tensors["value"].tolist() == [2.5]
    assert prediction.tensors["value"].dtype == np.float32


def test_inverse_scaling() -> None:
    prediction = _post(mean=[100.0], std=[20.0]).run({"y": np.array([0.5])}, {})
    assert prediction.fields == {"value": pytest.approx(110.0)}


def test_per_value_scaling_and_names() -> None:
    post = _post(names=["price", "rent"], mean=[100.0, 1.0], std=[10.0, 2.0])
    prediction = post.run({"y": np.array([1.5, -0.25])}, {})
    assert prediction.fields == {"price": pytest.approx(115.0), "rent": pytest.approx(0.5)}
    assert set(prediction.tensors) == {"price", "rent"}
    assert prediction.tensors["price"].tolist() == pytest.approx([115.0])
    assert prediction.tensors["rent"].shape == (1,)


def test_several_values_without_names() -> None:
    prediction = _post(mean=[1.0]).run({"y": np.array([[1.0, 2.0, 3.0]])}, {})
    assert prediction.fields == {"values": [2.0, 3.0, 4.0]}
    assert prediction.tensors["value"].tolist() == [2.0, 3.0, 4.0]


def test_name_count_mismatch() -> None:
    with pytest.raises(ModelError) as caught:
        _post(names=["a", "b"]).run({"y": np.array([1.0, 2.0, 3.0])}, {})
    assert caught.value.message == (
        "model output 'y' has 3 values but 2 names are configured; fix `names` in model.yaml"
    )


def test_scaling_count_mismatch() -> None:
    with pytest.raises(ModelError) as caught:
        _post(mean=[0.0, 0.0], std=[1.0, 1.0]).run({"y": np.array([1.0, 2.0, 3.0])}, {})
    assert "has 3 values but the regress stage scales 2" in caught.value.message
    assert "fix mean/std in model.yaml" in caught.value.message


def test_output_specs() -> None:
    assert [(s.name, s.shape) for s in _post().outputs] == [("value", [-1])]
    named = _post(names=["a", "b"]).outputs
    assert [(s.name, s.datatype, s.shape) for s in named] == [
        ("a", "FP32", [1]),
        ("b", "FP32", [1]),
    ]
