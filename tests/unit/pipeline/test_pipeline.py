"""The pipeline on real ONNX graphs: decode, per-item stages, grouped model runs, outputs."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from inferd.api.v2 import output_tensors
from inferd.backends import load_backend
from inferd.codecs import InferTensor
from inferd.errors import BadRequestError, InferdError, ModelError, SpecError
from inferd.pipeline import ItemResult, Pipeline
from inferd.spec import ModelSpec, TensorSpec, parse_spec
from inferd.stages import Item, Prediction
from inferd.testing import FakeBackend
from tests.support import onnx_models

LABELS = ["zero", "one", "two"]
FEATURES = [f"f{i}" for i in range(10)]


def _pipeline(
    folder: Path,
    build: Callable[[Path], Path],
    spec: dict[str, Any] | None = None,
    labels: list[str] | None = None,
) -> Pipeline:
    build(folder / "model.onnx")
    model_spec = parse_spec(spec or {"name": "m"})
    return Pipeline(model_spec, load_backend(model_spec, folder), labels)


def _tensor(name: str, datatype: str, data: Any) -> InferTensor:
    array = np.asarray(data) if datatype != "BYTES" else np.array(data, dtype=np.object_)
    if datatype == "FP32":
        array = array.astype(np.float32)
    elif datatype == "INT64":
        array = array.astype(np.int64)
    return InferTensor(name=name, datatype=datatype, shape=list(array.shape), data=array)


def _ok(result: ItemResult | BaseException) -> Prediction:
    assert isinstance(result, ItemResult), f"expected a prediction, got {result!r}"
    return result.prediction


def _softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores.astype(np.float64) - scores.max())
    return exp / exp.sum()


@pytest.fixture
def two(tmp_path: Path) -> Pipeline:
    """a[N, -1] FP32, b[N] INT64 → sum = a + 1, count = b * 2."""
    return _pipeline(tmp_path, onnx_models.two_in_two_out)


@pytest.fixture
def affine(tmp_path: Path) -> Pipeline:
    """x[N, 4] FP32 → logits[N, 3]."""
    return _pipeline(tmp_path, onnx_models.affine)


@pytest.fixture
def fixed(tmp_path: Path) -> Pipeline:
    """x[2, 3] → y = 3x, unbatched."""
    return _pipeline(
        tmp_path, onnx_models.fixed_shape, {"name": "m", "batching": {"max_batch_size": 0}}
    )


# --- images and tabular models built from model.yaml ----------------------------------------------

IMAGE_SPEC: dict[str, Any] = {
    "name": "digits",
    "task": "classification",
    "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1]}],
    "preprocess": [{"type": "image", "color": "L", "size": [8, 8], "layout": "CHW"}],
    "postprocess": [{"type": "classify", "top_k": 2}],
}


@pytest.fixture
def digits(tmp_path: Path) -> Pipeline:
    return _pipeline(tmp_path, onnx_models.image_classifier, IMAGE_SPEC, LABELS)


def _grey_png(seed: int) -> tuple[bytes, np.ndarray]:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(8, 8), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue(), pixels


def _expected_digit(pixels: np.ndarray) -> np.ndarray:
    weight, bias = onnx_models.image_classifier_weights()
    logits = (pixels.astype(np.float32) / 255.0).reshape(-1) @ weight + bias
    return _softmax(logits)


X_MEAN = np.linspace(-1.0, 1.0, 10)
X_STD = np.linspace(0.5, 2.0, 10)

TABULAR_SPEC: dict[str, Any] = {
    "name": "house",
    "task": "regression",
    "inputs": [{"name": f, "datatype": "FP64", "shape": [1]} for f in FEATURES],
    "preprocess": [
        {"type": "tabular", "features": FEATURES, "mean": X_MEAN.tolist(), "std": X_STD.tolist()}
    ],
    "postprocess": [{"type": "regress", "names": ["price"], "mean": [100.0], "std": [10.0]}],
}


@pytest.fixture
def house(tmp_path: Path) -> Pipeline:
    return _pipeline(tmp_path, onnx_models.linear_regressor, TABULAR_SPEC)


def _expected_price(features: np.ndarray) -> float:
    weight, bias = onnx_models.linear_regressor_weights()
    scaled = ((features - X_MEAN) / X_STD).astype(np.float32)
    return float((scaled @ weight + bias)[0]) * 10.0 + 100.0


# --- building ----------------------------------------------------------------------------------


def test_tensor_model_inputs_and_outputs_drop_the_batch_dim(two: Pipeline) -> None:
    assert [(t.name, t.datatype, t.shape) for t in two.inputs] == [
        ("a", "FP32", [-1]),
        ("b", "INT64", []),
    ]
    assert [(t.name, t.shape) for t in two.outputs] == [("sum", [-1]), ("count", [])]


def test_unbatched_model_keeps_shapes(fixed: Pipeline) -> None:
    assert fixed.batched is False
    assert [(t.name, t.shape) for t in fixed.inputs] == [("x", [2, 3])]


def test_classifier_outputs_come_from_its_stage(digits: Pipeline) -> None:
    assert [(t.name, t.datatype, t.shape) for t in digits.outputs] == [
        ("label", "BYTES", [1]),
        ("score", "FP32", [1]),
        ("probabilities", "FP32", [3]),
    ]
    assert [t.name for t in digits.inputs] == ["image"]


def test_stage_writing_an_unknown_model_input(tmp_path: Path) -> None:
    spec = {**IMAGE_SPEC, "preprocess": [{"type": "image", "size": [8, 8], "output": "pixels"}]}
    with pytest.raises(SpecError) as caught:
        _pipeline(tmp_path, onnx_models.image_classifier, spec, LABELS)
    assert "the image stage writes 'pixels' but the model's inputs are x" in caught.value.message


def test_postprocess_reading_an_unknown_output(tmp_path: Path) -> None:
    spec = {**IMAGE_SPEC, "postprocess": [{"type": "classify", "output": "scores"}]}
    with pytest.raises(SpecError) as caught:
        _pipeline(tmp_path, onnx_models.image_classifier, spec, LABELS)
    assert "reads output 'scores' but the model's outputs are logits" in caught.value.message


def test_stage_output_must_be_named_when_the_model_has_several_inputs(tmp_path: Path) -> None:
    spec = {
        "name": "m",
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1]}],
        "preprocess": [{"type": "image", "size": [4, 4]}],
    }
    with pytest.raises(SpecError) as caught:
        _pipeline(tmp_path, onnx_models.two_in_two_out, spec)
    assert "has 2 candidates (a, b); name one with `output:`" in caught.value.message


def test_declared_inputs_the_graph_lacks_are_caught_when_built(tmp_path: Path) -> None:
    # model.yaml declares "features" but the ONNX graph's input is "x" and no stage maps one
    # to the other: every request would fail, so building the pipeline must fail instead.
    spec = {"name": "m", "inputs": [{"name": "features", "datatype": "FP32", "shape": [4]}]}
    with pytest.raises(SpecError) as caught:
        _pipeline(tmp_path, onnx_models.affine, spec)
    assert "x" in caught.value.message


# --- stage 1: V2 tensors → items ------------------------------------------------------------


def test_items_split_along_the_batch(two: Pipeline) -> None:
    items = two.items_from_tensors(
        [_tensor("a", "FP32", [[1, 2, 3], [4, 5, 6]]), _tensor("b", "INT64", [7, 8])]
    )
    assert len(items) == 2
    assert items[0].inputs["a"].tolist() == [1.0, 2.0, 3.0]
    assert items[1].inputs["a"].tolist() == [4.0, 5.0, 6.0]
    assert items[0].inputs["b"].shape == () and int(items[1].inputs["b"]) == 8


def test_datatype_mismatch(two: Pipeline) -> None:
    a = InferTensor("a", "FP64", [1, 1], np.zeros((1, 1)))
    with pytest.raises(BadRequestError) as caught:
        two.items_from_tensors([a, _tensor("b", "INT64", [1])])
    assert caught.value.message == "input 'a' has datatype FP64 but the model expects FP32"


def test_missing_input(two: Pipeline) -> None:
    with pytest.raises(BadRequestError) as caught:
        two.items_from_tensors([_tensor("a", "FP32", [[1.0]])])
    assert caught.value.message == "missing input(s) b; this model's inputs are a, b"


def test_unknown_input(two: Pipeline) -> None:
    tensors = [
        _tensor("a", "FP32", [[1.0]]),
        _tensor("b", "INT64", [1]),
        _tensor("c", "FP32", [1.0]),
    ]
    with pytest.raises(BadRequestError) as caught:
        two.items_from_tensors(tensors)
    assert caught.value.message == "unknown input(s) c; this model's inputs are a, b"


def test_duplicate_input(two: Pipeline) -> None:
    a = _tensor("a", "FP32", [[1.0]])
    with pytest.raises(BadRequestError, match="input 'a' is given twice"):
        two.items_from_tensors([a, a, _tensor("b", "INT64", [1])])


def test_shape_mismatch_per_item(affine: Pipeline) -> None:
    with pytest.raises(BadRequestError) as caught:
        affine.items_from_tensors([_tensor("x", "FP32", np.zeros((2, 5)))])
    assert caught.value.message == (
        "input 'x' has per item shape [5] but the model expects per item [4] "
        "after the batch dimension"
    )


def test_batch_sizes_disagree(two: Pipeline) -> None:
    with pytest.raises(BadRequestError) as caught:
        two.items_from_tensors(
            [_tensor("a", "FP32", np.zeros((2, 3))), _tensor("b", "INT64", [1, 2, 3])]
        )
    assert "inputs disagree on the batch size" in caught.value.message
    assert "'a': 2" in caught.value.message and "'b': 3" in caught.value.message


def test_empty_batch(two: Pipeline) -> None:
    with pytest.raises(BadRequestError, match=r"the batch is empty \(batch dimension 0\)"):
        two.items_from_tensors(
            [_tensor("a", "FP32", np.zeros((0, 3))), _tensor("b", "INT64", np.zeros(0))]
        )


def test_scalar_without_batch_dimension(two: Pipeline) -> None:
    with pytest.raises(BadRequestError, match="every input needs a leading batch dimension"):
        two.items_from_tensors([_tensor("a", "FP32", np.zeros((1, 3))), _tensor("b", "INT64", 5)])


def test_scalar_per_item_is_accepted_for_a_one_element_input(tmp_path: Path) -> None:
    spec = {"name": "m", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}
    pipeline = _pipeline(tmp_path, lambda p: onnx_models.scaled(p, 3.0), spec)
    items = pipeline.items_from_tensors([_tensor("x", "FP32", [1.0, 2.0, 5.0])])
    assert [item.inputs["x"].shape for item in items] == [(1,), (1,), (1,)]
    results = pipeline.run_batch(items)
    assert [_ok(r).fields["y"] for r in results] == [[3.0], [6.0], [15.0]]


def test_unbatched_model_takes_the_whole_tensor(fixed: Pipeline) -> None:
    x = np.arange(6).reshape(2, 3)
    items = fixed.items_from_tensors([_tensor("x", "FP32", x)])
    assert len(items) == 1
    assert items[0].inputs["x"].shape == (2, 3)
    [result] = fixed.run_batch(items)
    assert _ok(result).fields["y"] == (x * 3).tolist()
    with pytest.raises(BadRequestError) as caught:
        fixed.items_from_tensors([_tensor("x", "FP32", np.zeros((3, 2)))])
    assert caught.value.message == "input 'x' has shape [3, 2] but the model expects [2, 3]"


# --- stage 1: V1 instances → items ----------------------------------------------------------


def test_instance_keyed_by_input_names(two: Pipeline) -> None:
    item = two.item_from_instance({"a": [1, 2], "b": 3})
    assert item.inputs["a"].dtype == np.float32 and item.inputs["a"].tolist() == [1.0, 2.0]
    assert item.inputs["b"].dtype == np.int64 and int(item.inputs["b"]) == 3


def test_instance_bare_value_for_a_single_input(affine: Pipeline) -> None:
    item = affine.item_from_instance([1, 2, 3, 4.5])
    assert set(item.inputs) == {"x"}
    assert item.inputs["x"].dtype == np.float32
    assert item.inputs["x"].tolist() == [1.0, 2.0, 3.0, 4.5]


def test_instance_bare_value_for_several_inputs_is_refused(two: Pipeline) -> None:
    with pytest.raises(BadRequestError) as caught:
        two.item_from_instance([1, 2])
    assert caught.value.message == (
        "this model has 2 inputs (a, b); send each instance as an object keyed by them"
    )


def test_instance_missing_key(two: Pipeline) -> None:
    with pytest.raises(BadRequestError, match="missing input"):
        two.item_from_instance({"a": [1.0]})


def test_instance_b64_for_bytes(digits: Pipeline) -> None:
    data, _ = _grey_png(1)
    encoded = base64.b64encode(data).decode()
    bare = digits.item_from_instance({"b64": encoded})
    keyed = digits.item_from_instance({"image": {"b64": encoded}})
    for item in (bare, keyed):
        assert item.inputs["image"].dtype == np.object_
        assert item.inputs["image"].shape == (1,)
        assert item.inputs["image"][0] == data


def test_instance_bad_base64(digits: Pipeline) -> None:
    with pytest.raises(BadRequestError, match="input 'image' is not valid base64"):
        digits.item_from_instance({"b64": "not base64!!"})


def test_instance_number_for_bytes_input(digits: Pipeline) -> None:
    with pytest.raises(BadRequestError, match="input 'image' takes text or"):
        digits.item_from_instance(42)


def test_strings_in_numeric_input_are_refused(affine: Pipeline) -> None:
    with pytest.raises(BadRequestError) as caught:
        affine.item_from_instance(["1", "2", "3", "4"])
    assert caught.value.message.startswith("input 'x' must be FP32 numbers; got ")


def test_object_for_numeric_input_is_refused(affine: Pipeline) -> None:
    with pytest.raises(BadRequestError, match="input 'x' takes FP32 numbers, not an object"):
        affine.item_from_instance({"x": {"value": 1}})


def test_ragged_list_is_refused(two: Pipeline) -> None:
    with pytest.raises(BadRequestError) as caught:
        two.item_from_instance({"a": [[1, 2], [3]], "b": 1})
    assert caught.value.message == (
        "input 'a' is a ragged list; every row must have the same length"
    )


def test_instance_of_the_wrong_shape(affine: Pipeline) -> None:
    with pytest.raises(BadRequestError) as caught:
        affine.item_from_instance([1, 2, 3])
    assert caught.value.message == (
        "input 'x' has per item shape [3] but the model expects per item [4] "
        "after the batch dimension"
    )


# --- stages 2-5: run_batch ------------------------------------------------------------------


def test_items_of_different_shapes_run_in_separate_groups(two: Pipeline) -> None:
    items = [
        two.item_from_instance({"a": [1, 2], "b": 1}),
        two.item_from_instance({"a": [1, 2, 3], "b": 2}),
        two.item_from_instance({"a": [5, 6], "b": 3}),
    ]
    results = two.run_batch(items)
    first, second, third = (_ok(r) for r in results)
    assert first.fields == {"sum": [2.0, 3.0], "count": 2}
    assert second.fields == {"sum": [2.0, 3.0, 4.0], "count": 4}
    assert third.fields == {"sum": [6.0, 7.0], "count": 6}
    sizes = [r.batch_size for r in results if isinstance(r, ItemResult)]
    assert sizes == [2, 1, 2]


def test_image_batch_matches_numpy(digits: Pipeline) -> None:
    pngs = [_grey_png(seed) for seed in range(3)]
    items = [digits.item_from_instance({"b64": base64.b64encode(d).decode()}) for d, _ in pngs]
    results = digits.run_batch(items)
    for result, (_, pixels) in zip(results, pngs, strict=True):
        prediction = _ok(result)
        expected = _expected_digit(pixels)
        best = int(np.argmax(expected))
        assert prediction.fields["label"] == LABELS[best]
        assert prediction.fields["score"] == pytest.approx(expected[best], rel=1e-4)
        np.testing.assert_allclose(prediction.tensors["probabilities"], expected, rtol=1e-4)
        assert len(prediction.fields["top_k"]) == 2
        assert isinstance(result, ItemResult) and result.batch_size == 3


def test_a_non_image_fails_alone(digits: Pipeline) -> None:
    good, pixels = _grey_png(4)
    tensor = _tensor("image", "BYTES", [[good], [b"<html>not an image</html>"], [good]])
    items = digits.items_from_tensors([tensor])
    results = digits.run_batch(items)
    assert isinstance(results[1], BadRequestError)
    assert "not an image file" in results[1].message
    expected = LABELS[int(np.argmax(_expected_digit(pixels)))]
    for result in (results[0], results[2]):
        assert _ok(result).fields["label"] == expected
        assert isinstance(result, ItemResult) and result.batch_size == 2


def test_v2_round_trip_stacks_prediction_tensors(digits: Pipeline) -> None:
    (one, p1), (two_, p2) = _grey_png(5), _grey_png(6)
    items = digits.items_from_tensors([_tensor("image", "BYTES", [[one], [two_]])])
    predictions = [_ok(r) for r in digits.run_batch(items)]
    tensors = _v2_outputs(digits, predictions)
    assert tensors["label"].shape == (2, 1)
    assert tensors["probabilities"].shape == (2, 3)
    np.testing.assert_allclose(
        tensors["probabilities"], [_expected_digit(p1), _expected_digit(p2)], rtol=1e-4
    )


def test_tabular_regression_matches_numpy(house: Pipeline) -> None:
    rng = np.random.default_rng(11)
    rows = rng.normal(size=(3, 10))
    items = [
        house.item_from_instance(dict(zip(FEATURES, row.tolist(), strict=True))) for row in rows
    ]
    results = house.run_batch(items)
    for result, row in zip(results, rows, strict=True):
        assert _ok(result).fields["price"] == pytest.approx(_expected_price(row), rel=1e-4)


def test_a_nan_feature_fails_alone(house: Pipeline) -> None:
    rows = np.random.default_rng(12).normal(size=(3, 10))
    instances = [dict(zip(FEATURES, row.tolist(), strict=True)) for row in rows]
    instances[0]["f3"] = float("nan")
    results = house.run_batch([house.item_from_instance(i) for i in instances])
    assert isinstance(results[0], BadRequestError)
    assert "f3" in results[0].message and "NaN" in results[0].message
    for result, row in zip(results[1:], rows[1:], strict=True):
        assert _ok(result).fields["price"] == pytest.approx(_expected_price(row), rel=1e-4)


def test_a_failing_model_call_fails_only_its_group(tmp_path: Path) -> None:
    # Declared per-item shape [-1] lets a 5-wide item through decoding; the graph wants 4.
    spec = {"name": "wide", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}]}
    pipeline = _pipeline(tmp_path, onnx_models.affine, spec)
    weight, bias = onnx_models.affine_weights()
    good = [[1.0, 0.0, 2.0, 0.5], [0.0, 1.0, 1.0, 1.0]]
    items = [pipeline.item_from_instance(v) for v in (good[0], [1, 2, 3, 4, 5], good[1])]
    results = pipeline.run_batch(items)
    assert isinstance(results[1], ModelError)
    assert results[1].message.startswith("model 'wide' failed while running:")
    for result, x in zip((results[0], results[2]), good, strict=True):
        expected = np.asarray(x, dtype=np.float32) @ weight + bias
        np.testing.assert_allclose(_ok(result).fields["logits"], expected, rtol=1e-5)
    # the pipeline keeps working afterwards
    [again] = pipeline.run_batch([pipeline.item_from_instance(good[1])])
    np.testing.assert_allclose(
        _ok(again).fields["logits"],
        np.asarray(good[1], dtype=np.float32) @ weight + bias,
        rtol=1e-5,
    )


def test_an_item_the_model_crashes_on_fails_alone_and_its_batch_mates_are_answered() -> None:
    poisoned = FakeBackend(
        inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 2])],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1])],
        fail=lambda inputs: bool((inputs["x"] < 0).any()),
        compute=lambda inputs: {"y": inputs["x"].sum(axis=1)},
    )
    pipeline = Pipeline(ModelSpec(name="poisoned"), poisoned)
    values = [[1.0, 2.0], [3.0, 4.0], [-1.0, 0.0], [5.0, 6.0], [7.0, 8.0]]
    results = pipeline.run_batch([pipeline.item_from_instance(v) for v in values])
    assert isinstance(results[2], ModelError)
    assert "failed while running" in results[2].message
    answered = [_ok(r).fields["y"] for i, r in enumerate(results) if i != 2]
    assert answered == pytest.approx([3.0, 7.0, 11.0, 15.0])
    assert poisoned.batch_sizes[0] == 5 and poisoned.calls <= 2 * len(values)


def test_outputs_without_the_batch_size_are_a_model_error() -> None:
    no_batch_dim = FakeBackend(  # a backend that forgets the batch dimension in its outputs
        inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 2])],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1])],
        compute=lambda inputs: {"y": inputs["x"].sum(axis=0)[:1]},
    )
    pipeline = Pipeline(ModelSpec(name="bad"), no_batch_dim)
    items = [pipeline.item_from_instance([1.0, 2.0]) for _ in range(3)]
    results = pipeline.run_batch(items)
    assert all(isinstance(r, ModelError) for r in results)
    assert "output(s) y do not have the batch size 3" in str(results[0])


def test_empty_run_batch(two: Pipeline) -> None:
    assert two.run_batch([]) == []


# --- V2 outputs -----------------------------------------------------------------------------


def _v2_outputs(pipeline: Pipeline, predictions: list[Prediction]) -> dict[str, np.ndarray]:
    """The V2 output tensors the V2 API answers for these predictions."""
    return output_tensors(pipeline.spec.name, pipeline.batched, pipeline.ragged, predictions)


def test_tensors_from_predictions_stacks(two: Pipeline) -> None:
    items = [two.item_from_instance({"a": [1, 2], "b": b}) for b in (1, 2)]
    predictions = [_ok(r) for r in two.run_batch(items)]
    tensors = _v2_outputs(two, predictions)
    assert tensors["sum"].tolist() == [[2.0, 3.0], [2.0, 3.0]]
    assert tensors["count"].tolist() == [2, 4]


def test_one_prediction_is_a_batch_of_one_like_stacking_gives(two: Pipeline) -> None:
    """The one-item shortcut (a view, no copy) answers what np.stack would."""
    item = two.item_from_instance({"a": [1, 2], "b": 3})
    [result] = two.run_batch([item])
    prediction = _ok(result)
    tensors = _v2_outputs(two, [prediction])
    for name, value in prediction.tensors.items():
        stacked = np.stack([value])
        assert tensors[name].shape == stacked.shape and tensors[name].dtype == stacked.dtype
        np.testing.assert_array_equal(tensors[name], stacked)
    assert tensors["sum"].tolist() == [[2.0, 3.0]]


def test_tensors_of_different_shapes_cannot_stack(two: Pipeline) -> None:
    items = [two.item_from_instance({"a": a, "b": 1}) for a in ([1], [1, 2])]
    predictions = [_ok(r) for r in two.run_batch(items)]
    with pytest.raises(ModelError, match="outputs of different shapes cannot be returned"):
        _v2_outputs(two, predictions)


def test_unbatched_tensors_are_returned_as_they_are(fixed: Pipeline) -> None:
    [result] = fixed.run_batch([Item.of({"x": np.ones((2, 3), dtype=np.float32)})])
    tensors = _v2_outputs(fixed, [_ok(result)])
    assert tensors["y"].shape == (2, 3)
    assert np.all(tensors["y"] == 3.0)


# --- in-process prediction ------------------------------------------------------------------


def test_predict_instances_keeps_order_and_errors_in_place(tmp_path: Path) -> None:
    pipeline = _pipeline(
        tmp_path, onnx_models.affine, {"name": "m", "batching": {"max_batch_size": 2}}
    )
    weight, bias = onnx_models.affine_weights()
    instances: list[Any] = [
        [1, 0, 0, 0],
        "oops",
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [1, 2, 3],
        [0, 0, 0, 1],
    ]
    outcomes = pipeline.predict_instances(instances)
    assert len(outcomes) == 6
    assert isinstance(outcomes[1], BadRequestError)
    assert isinstance(outcomes[4], BadRequestError)
    assert "per item shape [3]" in outcomes[4].message
    for index, row in ((0, 0), (2, 1), (3, 2), (5, 3)):
        outcome = outcomes[index]
        assert not isinstance(outcome, InferdError)
        np.testing.assert_allclose(outcome.fields["logits"], weight[row] + bias, rtol=1e-5)


def test_texts_of_different_lengths_share_a_padded_batch(tmp_path: Path) -> None:
    onnx_models.masked_token_sum(tmp_path / "1" / "model.onnx")
    onnx_models.word_tokenizer(tmp_path / "tokenizer.json", ["a", "b", "c", "d"])
    spec = parse_spec(
        {
            "name": "summer",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}],
            "preprocess": [{"type": "text", "max_length": 3}],
        }
    )
    pipeline = Pipeline(spec, load_backend(spec, tmp_path / "1"), None, tmp_path)
    texts = ["a", "d c", "b b b b"]  # ids 2 | 5 4 | 3 3 3 (truncated from 4 words)
    results = pipeline.run_batch([pipeline.item_from_instance(t) for t in texts])
    ok = [_ok(r) for r in results]
    assert [r.fields["total"] for r in ok] == [[2.0], [9.0], [9.0]]
    assert [r.batch_size for r in results] == [3, 3, 3]  # one model call for all three
    assert [r.prediction.parameters for r in results] == [{}, {}, {"truncated_to_tokens": 3}]
    assert ok[2].as_json()["parameters"] == {"truncated_to_tokens": 3}
