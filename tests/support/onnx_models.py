"""Small real ONNX graphs built with onnx.helper, for tests that need a model of a given shape.

The bundled example models (model_repository/) cover the real tasks; these cover the corners
of serving a bare ONNX file: dynamic dims, several inputs/outputs, int64 and fixed shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def affine(path: Path, features: int = 4, classes: int = 3, seed: int = 0) -> Path:
    """x[N, features] FP32 → logits[N, classes] = x @ W + b; a batched linear classifier."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.normal(size=(features, classes)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.normal(size=(classes,)).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logits"]),
        ],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=[weight, bias],
    )
    return _save(graph, path)


def affine_weights(
    seed: int = 0, features: int = 4, classes: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(features, classes)).astype(np.float32),
        rng.normal(size=(classes,)).astype(np.float32),
    )


def two_in_two_out(path: Path) -> Path:
    """a[N, -1] FP32, b[N] INT64 → sum[N, -1] = a + 1, count[N] = b * 2 (dynamic dims, int64)."""
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    two = numpy_helper.from_array(np.array(2, dtype=np.int64), "two")
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "one"], ["sum"]),
            helper.make_node("Mul", ["b", "two"], ["count"]),
        ],
        "two_in_two_out",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", "length"]),
            helper.make_tensor_value_info("b", TensorProto.INT64, ["batch"]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", "length"]),
            helper.make_tensor_value_info("count", TensorProto.INT64, ["batch"]),
        ],
        initializer=[one, two],
    )
    return _save(graph, path)


def fixed_shape(path: Path) -> Path:
    """x[2, 3] FP32 → y[2, 3] = x * 3; no batch dimension, so it is served unbatched."""
    three = numpy_helper.from_array(np.array(3.0, dtype=np.float32), "three")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "three"], ["y"])],
        "fixed_shape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=[three],
    )
    return _save(graph, path)
