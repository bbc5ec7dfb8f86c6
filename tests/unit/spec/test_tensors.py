"""Tensor declarations (`inputs:`, `outputs:`): datatypes and shapes."""

from __future__ import annotations

import pytest

from inferd.spec import parse_spec
from tests.unit.spec.documents import error


def test_datatype_is_case_insensitive_and_normalised() -> None:
    spec = parse_spec(
        {"name": "m", "inputs": [{"name": "x", "datatype": "fp32", "shape": [-1, 3]}]}
    )
    assert spec.inputs[0].datatype == "FP32"
    assert spec.inputs[0].shape == [-1, 3]


def test_tensor_shape_defaults_to_any_length() -> None:
    spec = parse_spec({"name": "m", "inputs": [{"name": "x", "datatype": "INT64"}]})
    assert spec.inputs[0].shape == [-1]


def test_bad_datatype_lists_the_allowed_ones() -> None:
    message = error({"name": "m", "inputs": [{"name": "x", "datatype": "float"}]})
    assert "inputs.0.datatype: unknown datatype 'float'" in message
    assert "FP32" in message and "BYTES" in message


@pytest.mark.parametrize("shape", [[0], [3, -2], [-5]])
def test_bad_shape_is_refused(shape: list[int]) -> None:
    message = error({"name": "m", "outputs": [{"name": "y", "datatype": "FP32", "shape": shape}]})
    assert f"outputs.0.shape: shape {shape}" in message
    assert "positive size or -1" in message
