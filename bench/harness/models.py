"""The ONNX models the benchmarks serve, built here with fixed random weights: a trivial one
that costs nothing and a compute-bound CNN; and the model.yaml inferd serves them with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

COMPUTE_SHAPE = (3, 32, 32)


def build_compute_model(
    path: Path,
    seed: int = 0,
    shape: tuple[int, int, int] = COMPUTE_SHAPE,
    channels: tuple[int, int] = (32, 64),
    hidden: int = 768,
    name: str = "bench_cnn",
) -> Path:
    """x[N,3,32,32] → logits[N,10] by default: two 3x3 Conv+Relu (32, 64 channels), 2x2
    MaxPool, then Gemm 16384→768 + Relu and Gemm 768→10. Fixed random weights. The
    convolutions are compute-bound; the 48 MB first Gemm is memory-bound at batch 1, which is
    what batching amortizes (its weights are read once per batch instead of once per item)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def weight(name: str, shape: tuple[int, ...]) -> Any:
        fan_in = int(np.prod(shape[1:]))
        values = rng.standard_normal(shape) / np.sqrt(fan_in)
        return numpy_helper.from_array(values.astype(np.float32), name)

    def zeros(name: str, size: int) -> Any:
        return numpy_helper.from_array(np.zeros(size, np.float32), name)

    (c1, c2), classes = channels, 10
    features = c2 * (shape[1] // 2) * (shape[2] // 2)
    initializers = [
        weight("w1", (c1, shape[0], 3, 3)),
        zeros("b1", c1),
        weight("w2", (c2, c1, 3, 3)),
        zeros("b2", c2),
        weight("w3", (hidden, features)),
        zeros("b3", hidden),
        weight("w4", (classes, hidden)),
        zeros("b4", classes),
    ]
    node = helper.make_node
    nodes = [
        node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        node("Relu", ["c1"], ["r1"]),
        node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        node("Relu", ["c2"], ["r2"]),
        node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Flatten", ["p2"], ["f"]),
        node("Gemm", ["f", "w3", "b3"], ["h"], transB=1),
        node("Relu", ["h"], ["rh"]),
        node("Gemm", ["rh", "w4", "b4"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def build_trivial_model(path: Path) -> Path:
    """x[N,4] FP32 → y[N,4] = x + 1: a model that costs nothing, so serving it measures
    inferd's own per-request cost (framework, codecs, batching, metrics) over the floor."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.ones(4, np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "bench_trivial",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_model_yaml(model_dir: Path, max_batch_size: int, threads: int) -> None:
    model_dir.joinpath("model.yaml").write_text(
        f"name: {model_dir.name}\n"
        f"batching: {{max_batch_size: {max_batch_size}, max_delay_ms: 0}}\n"
        f"runtime: {{threads: {threads}}}\n"
    )
