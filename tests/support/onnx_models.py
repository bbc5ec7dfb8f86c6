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


def image_classifier_weights(
    seed: int = 1, classes: int = 3, side: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(side * side, classes)).astype(np.float32),
        rng.normal(size=(classes,)).astype(np.float32),
    )


def image_classifier(path: Path, classes: int = 3, side: int = 8, seed: int = 1) -> Path:
    """x[N, 1, side, side] FP32 → logits[N, classes] = flatten(x) @ W + b; a tiny vision model."""
    weight, bias = image_classifier_weights(seed, classes, side)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["x"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logits"]),
        ],
        "image_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    return _save(graph, path)


def linear_regressor_weights(seed: int = 2, features: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(features, 1)).astype(np.float32),
        rng.normal(size=(1,)).astype(np.float32),
    )


def linear_regressor(path: Path, features: int = 10, seed: int = 2) -> Path:
    """x[N, features] FP32 → y[N, 1] = x @ w + b; a batched linear regressor."""
    weight, bias = linear_regressor_weights(seed, features)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "linear_regressor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    return _save(graph, path)


def scaled(path: Path, factor: float) -> Path:
    """x[N, -1] FP32 → y[N, -1] = x * factor; versions of one model that differ in `factor`."""
    constant = numpy_helper.from_array(np.array(factor, dtype=np.float32), "factor")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "factor"], ["y"])],
        "scaled",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "length"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "length"])],
        initializer=[constant],
    )
    return _save(graph, path)


STRING_CODES = {"café": 1, "tea": 2}


def string_lookup(path: Path) -> Path:
    """text[N] STRING → code[N] INT64: LabelEncoder over STRING_CODES, -1 for anything else."""
    graph = helper.make_graph(
        [
            helper.make_node(
                "LabelEncoder",
                ["text"],
                ["code"],
                domain="ai.onnx.ml",
                keys_strings=list(STRING_CODES),
                values_int64s=list(STRING_CODES.values()),
                default_int64=-1,
            )
        ],
        "string_lookup",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("code", TensorProto.INT64, ["batch"])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def stateful_scaled(path: Path, hidden: int = 3) -> Path:
    """A recurrent-style step with a scalar input and a state input, all unbatched:
    x[-1, hidden] FP32, h[1, hidden] FP32, alpha[] FP32 (a scalar) →
    y = x * alpha + h (broadcast), h_next = h + 1. Its first dims are not all dynamic."""
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "alpha"], ["scaled"]),
            helper.make_node("Add", ["scaled", "h"], ["y"]),
            helper.make_node("Add", ["h", "one"], ["h_next"]),
        ],
        "stateful_scaled",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["steps", hidden]),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, hidden]),
            helper.make_tensor_value_info("alpha", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["steps", hidden]),
            helper.make_tensor_value_info("h_next", TensorProto.FLOAT, [1, hidden]),
        ],
        initializer=[one],
    )
    return _save(graph, path)


def masked_token_sum(path: Path) -> Path:
    """input_ids[N, L] INT64, attention_mask[N, L] INT64 → total[N, 1] FP32 = sum of ids where
    the mask is 1: padding to any length leaves the answer unchanged."""
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["input_ids", "attention_mask"], ["kept"]),
            helper.make_node("Cast", ["kept"], ["kept_f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["kept_f", "axes"], ["total"], keepdims=1),
        ],
        "masked_token_sum",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch", 1])],
        initializer=[axes],
    )
    return _save(graph, path)


def word_tokenizer(path: Path, words: list[str]) -> Path:
    """A real `tokenizers` WordLevel tokenizer.json: [PAD]=0, [UNK]=1, then `words`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


def brightness_detector(path: Path, boxes: np.ndarray, class_weights: np.ndarray) -> Path:
    """x[N, 1, H, W] FP32 → boxes[N, K, 4] (fixed, in model pixels) and
    scores[N, K, C] = mean(x) * class_weights: a bright image finds its boxes, a black one none."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Reshape", ["mean", "three_dims"], ["brightness"]),
            helper.make_node("Mul", ["brightness", "W"], ["scores"]),
            helper.make_node("Mul", ["brightness", "zeros"], ["no_shift"]),
            helper.make_node("Add", ["no_shift", "B"], ["boxes"]),
        ],
        "brightness_detector",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, "height", "width"])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", len(boxes), 4]),
            helper.make_tensor_value_info(
                "scores", TensorProto.FLOAT, ["batch", len(boxes), class_weights.shape[1]]
            ),
        ],
        initializer=[
            numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "three_dims"),
            numpy_helper.from_array(class_weights.astype(np.float32), "W"),
            numpy_helper.from_array(np.zeros_like(boxes, dtype=np.float32), "zeros"),
            numpy_helper.from_array(boxes.astype(np.float32), "B"),
        ],
    )
    return _save(graph, path)
