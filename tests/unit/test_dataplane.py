"""The DataPlane over a real ModelRepository: health, metadata, V2 infer, V1 predict, metrics."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from inferd import __version__
from inferd.api import v1, v2
from inferd.codecs import InferRequest, InferResponse, InferTensor
from inferd.dataplane import DataPlane
from inferd.errors import (
    BadRequestError,
    ModelError,
    ModelNotReadyError,
    NotFoundError,
    PayloadTooLargeError,
)
from inferd.monitor.metrics import STAGES, Metrics
from inferd.pipeline import Request
from inferd.repository import ModelRepository
from tests.support import onnx_models

LABELS = ["setosa", "versicolor", "virginica"]
IRIS_SEEDS = {2: 3, 10: 7}  # version → weight seed, so each version answers differently
FEATURES = ["f0", "f1", "f2"]


async def _infer(
    plane: DataPlane, name: str, version: str | None, request: InferRequest, request_id: str
) -> InferResponse:
    """A V2 request through the DataPlane and back, as the V2 route does it."""
    served = await plane.infer(
        name, version, request.inputs, Request(request_id, None, request.parameters or {})
    )
    return v2.infer_response(served, request.id if request.id is not None else request_id)


def _write_yaml(folder: Path, spec: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")


def _build_models(root: Path) -> None:
    """affine (bare, batched), fixed (bare, unbatched), iris (classify), house (tabular)."""
    onnx_models.affine(root / "affine" / "1" / "model.onnx")
    onnx_models.fixed_shape(root / "fixed" / "1" / "model.onnx")
    for version, seed in IRIS_SEEDS.items():
        onnx_models.affine(root / "iris" / str(version) / "model.onnx", seed=seed)
    _write_yaml(
        root / "iris",
        {
            "task": "classification",
            "description": "three kinds of iris",
            "labels": LABELS,
            "postprocess": [{"type": "classify", "top_k": 2}],
            "versions": "all",
        },
    )
    onnx_models.linear_regressor(root / "house" / "1" / "model.onnx", features=3)
    _write_yaml(
        root / "house",
        {
            "task": "regression",
            "inputs": [{"name": f, "datatype": "FP64", "shape": [1]} for f in FEATURES],
            "preprocess": [{"type": "tabular", "features": FEATURES}],
            "postprocess": [{"type": "regress", "names": ["price"]}],
        },
    )


def _add_broken(root: Path) -> None:
    folder = root / "broken" / "1"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not an onnx graph")


FAILING_MODEL = textwrap.dedent(
    """
    from inferd.testing import FakeBackend


    def Model():
        return FakeBackend(fail=RuntimeError("kaboom: the weights are gone"))
    """
)


def _add_failing_python_model(root: Path) -> None:
    folder = root / "pyfail"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(FAILING_MODEL, encoding="utf-8")
    _write_yaml(
        folder,
        {
            "backend": "python",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [2]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [2]}],
        },
    )


def _dataplane(root: Path, trust_code: bool = False) -> DataPlane:
    """A loaded (not started) repository in a DataPlane, wired to Metrics as the server does."""
    planes: list[DataPlane] = []
    metrics = Metrics(
        queues=lambda: planes[0].queue_states(), known_models=lambda n: planes[0].known(n)
    )
    repository = ModelRepository(root, trust_code=trust_code, on_batch=metrics.observe_batch)
    repository.load()
    planes.append(DataPlane(repository, metrics))
    return planes[0]


async def _start(plane: DataPlane) -> None:
    await plane.repository.start()
    plane.started = True


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _build_models(tmp_path)
    return tmp_path


@pytest.fixture
async def plane(root: Path) -> AsyncIterator[DataPlane]:
    """The four good models, started; stopped after the test."""
    dataplane = _dataplane(root)
    await _start(dataplane)
    try:
        yield dataplane
    finally:
        await dataplane.repository.stop()


def _fp32(name: str, array: np.ndarray) -> InferTensor:
    data = np.asarray(array, dtype=np.float32)
    return InferTensor(name=name, datatype="FP32", shape=list(data.shape), data=data)


def _softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores.astype(np.float64) - scores.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def _iris_probabilities(x: np.ndarray, version: int) -> np.ndarray:
    weight, bias = onnx_models.affine_weights(seed=IRIS_SEEDS[version])
    return _softmax(x.astype(np.float32) @ weight + bias)


# --- health -------------------------------------------------------------------------------------


async def test_ready_only_once_started(root: Path) -> None:
    plane = _dataplane(root)
    try:
        assert plane.live() is True
        assert plane.ready() is False  # loaded, nothing serving
        await plane.repository.start()
        assert plane.ready() is False  # batchers run, but the server has not said it started
        plane.started = True
        assert plane.ready() is True
    finally:
        await plane.repository.stop()
    assert plane.ready() is False  # stopped versions serve nothing


async def test_not_ready_while_a_model_failed_to_load(root: Path) -> None:
    _add_broken(root)
    plane = _dataplane(root)
    await _start(plane)
    try:
        assert plane.model_ready("affine") is True
        assert plane.ready() is False
        assert plane.live() is True
    finally:
        await plane.repository.stop()


async def test_server_metadata(plane: DataPlane) -> None:
    assert v2.server_metadata() == {
        "name": "inferd",
        "version": __version__,
        "extensions": ["binary_tensor_data", "kserve_v1", "metrics"],
    }


async def test_model_ready_by_version(root: Path) -> None:
    plane = _dataplane(root)
    try:
        assert plane.model_ready("iris") is False
        assert plane.model_ready("iris", "10") is False
        await _start(plane)
        assert plane.model_ready("iris") is True
        assert plane.model_ready("iris", "2") is True
        assert plane.model_ready("iris", "10") is True
        with pytest.raises(NotFoundError, match="model 'iris' has no version 3"):
            plane.model_ready("iris", "3")  # a version it never had is not "not ready"
        with pytest.raises(NotFoundError, match="model version must be a number"):
            plane.model_ready("iris", "latest")
        with pytest.raises(NotFoundError, match="unknown model 'ghost'"):
            plane.model_ready("ghost")
    finally:
        await plane.repository.stop()


async def test_known_models(plane: DataPlane) -> None:
    assert plane.known("iris") is True
    assert plane.known("ghost") is False


# --- metadata -----------------------------------------------------------------------------------


async def test_metadata_of_a_batched_model_prepends_the_batch_dim(plane: DataPlane) -> None:
    assert v2.model_metadata(plane, "affine", None) == {
        "name": "affine",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 3]}],
        "parameters": {"task": "tensor", "max_batch_size": 32, "description": ""},
    }


async def test_metadata_of_an_unbatched_model_keeps_its_shapes(plane: DataPlane) -> None:
    metadata = v2.model_metadata(plane, "fixed", None)
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [2, 3]}]
    assert metadata["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [2, 3]}]
    assert metadata["parameters"]["max_batch_size"] == 0


async def test_metadata_of_a_classifier(plane: DataPlane) -> None:
    metadata = v2.model_metadata(plane, "iris", None)
    assert metadata["versions"] == ["2", "10"]  # numeric order, not string order
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1, 1]},
        {"name": "score", "datatype": "FP32", "shape": [-1, 1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]
    assert metadata["parameters"] == {
        "task": "classification",
        "max_batch_size": 32,
        "description": "three kinds of iris",
    }
    assert v2.model_metadata(plane, "iris", "2")["versions"] == ["2", "10"]


async def test_metadata_of_unknown_models_and_versions(plane: DataPlane) -> None:
    with pytest.raises(NotFoundError, match="unknown model 'ghost'"):
        v2.model_metadata(plane, "ghost", None)
    with pytest.raises(NotFoundError, match="model 'iris' has no version 3 loaded"):
        v2.model_metadata(plane, "iris", "3")


async def test_model_index_lists_every_model_and_a_broken_one_with_its_reason(
    root: Path,
) -> None:
    _add_broken(root)
    plane = _dataplane(root)
    try:
        loading = v2.repository_index(plane)
        assert {"name": "affine", "version": "1", "state": "LOADING"} in loading
        await _start(plane)
        index = v2.repository_index(plane)
    finally:
        await plane.repository.stop()
    broken = index[1]
    assert [(row["name"], row.get("version"), row["state"]) for row in index] == [
        ("affine", "1", "READY"),
        ("broken", None, "UNAVAILABLE"),
        ("fixed", "1", "READY"),
        ("house", "1", "READY"),
        ("iris", "2", "READY"),
        ("iris", "10", "READY"),
    ]
    assert set(broken) == {"name", "state", "reason"}
    assert broken["reason"].startswith("version 1: ")
    assert "could not be loaded by onnxruntime" in broken["reason"]


async def test_metadata_of_a_broken_model_says_why(root: Path) -> None:
    _add_broken(root)
    plane = _dataplane(root)
    await _start(plane)
    try:
        with pytest.raises(ModelNotReadyError, match="model 'broken' is not ready: version 1: "):
            v2.model_metadata(plane, "broken", None)
    finally:
        await plane.repository.stop()


# --- V2 infer -----------------------------------------------------------------------------------


async def test_infer_batched_tensor_model(plane: DataPlane) -> None:
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    weight, bias = onnx_models.affine_weights()
    response = await _infer(plane, "affine", None, InferRequest([_fp32("x", x)]), "req-1")
    assert response.model_name == "affine"
    assert response.model_version == "1"
    assert response.id == "req-1"  # the request had no id of its own
    [logits] = response.outputs
    assert (logits.name, logits.datatype, logits.shape) == ("logits", "FP32", [3, 3])
    assert logits.data.dtype == np.float32
    np.testing.assert_allclose(logits.data, x @ weight + bias, rtol=1e-5, atol=1e-6)


async def test_more_items_than_a_request_may_carry_is_a_413_before_decoding(root: Path) -> None:
    _write_yaml(root / "affine", {"batching": {"max_queue": 64, "max_items_per_request": 100}})
    plane = _dataplane(root)
    await _start(plane)
    try:
        x = np.zeros((65, 4), dtype=np.float32)  # over max_queue: no retry could get it in
        with pytest.raises(PayloadTooLargeError, match="the request has 65 items") as refused:
            await _infer(plane, "affine", None, InferRequest([_fp32("x", x)]), "r")
        assert refused.value.status_code == 413 and "at most 64 per request" in str(refused.value)
        with pytest.raises(PayloadTooLargeError, match="the request has 70 items"):
            await v1.predict(plane, "affine", None, [[1, 2, 3, 4]] * 70, "r")
        served = await v1.predict(plane, "affine", None, [[1, 2, 3, 4]] * 64, "r")
        assert len(served) == 64
    finally:
        await plane.repository.stop()


async def test_infer_echoes_the_request_id(plane: DataPlane) -> None:
    request = InferRequest([_fp32("x", np.ones((1, 4)))], id="client-7")
    response = await _infer(plane, "affine", None, request, "server-1")
    assert response.id == "client-7"


async def test_infer_unbatched_model(plane: DataPlane) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    response = await _infer(plane, "fixed", None, InferRequest([_fp32("x", x)]), "r")
    [y] = response.outputs
    assert (y.name, y.datatype, y.shape) == ("y", "FP32", [2, 3])
    np.testing.assert_allclose(y.data, x * 3)


async def test_infer_classifier_per_version(plane: DataPlane) -> None:
    x = np.random.default_rng(2).normal(size=(2, 4)).astype(np.float32)
    for version in ("2", "10"):
        response = await _infer(plane, "iris", version, InferRequest([_fp32("x", x)]), "r")
        assert response.model_version == version
        outputs = {t.name: t for t in response.outputs}
        assert list(outputs) == ["label", "score", "probabilities"]
        expected = _iris_probabilities(x, int(version))
        best = expected.argmax(axis=1)
        assert outputs["label"].datatype == "BYTES"
        assert outputs["label"].shape == [2, 1]
        assert outputs["label"].data.tolist() == [[LABELS[i].encode()] for i in best]
        assert (outputs["score"].datatype, outputs["score"].shape) == ("FP32", [2, 1])
        np.testing.assert_allclose(
            outputs["score"].data[:, 0], expected[np.arange(2), best], rtol=1e-5
        )
        assert outputs["probabilities"].shape == [2, 3]
        np.testing.assert_allclose(outputs["probabilities"].data, expected, rtol=1e-5)
    latest = await _infer(plane, "iris", None, InferRequest([_fp32("x", x)]), "r")
    assert latest.model_version == "10"


async def test_infer_bad_input_is_a_bad_request(plane: DataPlane) -> None:
    with pytest.raises(BadRequestError) as caught:
        await _infer(plane, "affine", None, InferRequest([_fp32("x", np.ones((1, 5)))]), "r")
    assert caught.value.message == (
        "input 'x' has per item shape [5] but the model expects per item [4] "
        "after the batch dimension"
    )


async def test_infer_unknown_model(plane: DataPlane) -> None:
    with pytest.raises(NotFoundError, match="unknown model 'ghost'"):
        await _infer(plane, "ghost", None, InferRequest([_fp32("x", np.ones((1, 4)))]), "r")


# --- V1 predict ---------------------------------------------------------------------------------


async def test_predict_several_instances(plane: DataPlane) -> None:
    rows = np.random.default_rng(3).normal(size=(3, 4))
    predictions = await v1.predict(plane, "iris", None, rows.tolist(), "r")
    expected = _iris_probabilities(rows, 10)
    assert len(predictions) == 3
    for prediction, probabilities in zip(predictions, expected, strict=True):
        order = np.argsort(-probabilities)
        assert prediction["label"] == LABELS[order[0]]
        assert prediction["score"] == pytest.approx(probabilities[order[0]], rel=1e-5)
        assert [entry["label"] for entry in prediction["top_k"]] == [
            LABELS[order[0]],
            LABELS[order[1]],
        ]


async def test_predict_tensor_model(plane: DataPlane) -> None:
    weight, bias = onnx_models.affine_weights()
    rows = [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]]
    predictions = await v1.predict(plane, "affine", "1", rows, "r")
    assert list(predictions[0]) == ["logits"]
    np.testing.assert_allclose(predictions[0]["logits"], weight[0] + bias, rtol=1e-5)
    np.testing.assert_allclose(predictions[1]["logits"], 2 * weight[2] + bias, rtol=1e-5)


async def test_predict_decode_error_names_its_instance(plane: DataPlane) -> None:
    instances = [[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3]]
    with pytest.raises(BadRequestError) as caught:
        await v1.predict(plane, "affine", None, instances, "r")
    assert type(caught.value) is BadRequestError
    assert caught.value.status_code == 400
    assert caught.value.message == (
        "instance 2: input 'x' has per item shape [3] but the model expects per item [4] "
        "after the batch dimension"
    )


async def test_predict_single_instance_error_has_no_prefix(plane: DataPlane) -> None:
    with pytest.raises(BadRequestError) as caught:
        await v1.predict(plane, "affine", None, [[1, 2, 3]], "r")
    assert caught.value.message.startswith("input 'x' has per item shape [3]")


async def test_predict_stage_error_names_its_instance(plane: DataPlane) -> None:
    good = {"f0": 1.0, "f1": 2.0, "f2": 3.0}
    instances = [good, good, {"f0": 1.0, "f1": float("nan"), "f2": 3.0}]
    with pytest.raises(BadRequestError) as caught:
        await v1.predict(plane, "house", None, instances, "r")
    assert type(caught.value) is BadRequestError
    assert caught.value.message == (
        "instance 2: feature(s) f1 are NaN or infinite; send finite numbers"
    )
    # the server keeps answering the same model
    weight, bias = onnx_models.linear_regressor_weights(features=3)
    [prediction] = await v1.predict(plane, "house", None, [good], "r")
    expected = float((np.array([1.0, 2.0, 3.0], dtype=np.float32) @ weight + bias)[0])
    assert prediction["price"] == pytest.approx(expected, rel=1e-5)


async def test_model_error_carries_the_request_id(root: Path) -> None:
    _add_failing_python_model(root)
    plane = _dataplane(root, trust_code=True)
    await _start(plane)
    try:
        assert v2.model_metadata(plane, "pyfail", None)["platform"] == "python"
        request = InferRequest([_fp32("x", np.ones((1, 2)))])
        with pytest.raises(ModelError) as infer_error:
            await _infer(plane, "pyfail", None, request, "req-42")
        assert infer_error.value.message == (
            "model 'pyfail' failed while running: kaboom: the weights are gone "
            "(request id req-42; the traceback is in the server log)"
        )
        assert infer_error.value.status_code == 500
        with pytest.raises(ModelError) as predict_error:
            await v1.predict(plane, "pyfail", None, [[1, 2], [3, 4]], "req-43")
        assert predict_error.value.message.endswith(
            "kaboom: the weights are gone (request id req-43; the traceback is in the server log)"
        )
        # the other models are unaffected
        response = await _infer(
            plane, "affine", None, InferRequest([_fp32("x", np.ones((1, 4)))]), "r"
        )
        assert response.outputs[0].shape == [1, 3]
    finally:
        await plane.repository.stop()


async def test_not_serving_model_is_not_ready(root: Path) -> None:
    plane = _dataplane(root)
    try:
        with pytest.raises(ModelNotReadyError, match="model 'affine' version 1 is not serving yet"):
            await v1.predict(plane, "affine", None, [[1, 2, 3, 4]], "r")
    finally:
        await plane.repository.stop()


def _add_house(root: Path, name: str, **extra: Any) -> None:
    onnx_models.linear_regressor(root / name / "1" / "model.onnx", features=3)
    _write_yaml(
        root / name,
        {
            "task": "regression",
            "inputs": [{"name": f, "datatype": "FP64", "shape": [1]} for f in FEATURES],
            "preprocess": [{"type": "tabular", "features": FEATURES}],
            "postprocess": [{"type": "regress", "names": ["price"]}],
            **extra,
        },
    )


async def test_decisions_are_answered_only_by_models_with_rules(tmp_path: Path) -> None:
    """Stage 6 runs for a prediction log or rules, and skips models with neither; only rules
    put decisions in the answer."""
    _add_house(tmp_path, "plain")
    _add_house(tmp_path, "logged", prediction_log={"inputs": ["f0"]})
    _add_house(tmp_path, "ruled", decide=[{"decision": "always", "when": "true"}])
    plane = _dataplane(tmp_path)
    await _start(plane)
    try:
        instance = dict.fromkeys(FEATURES, 1.0)
        tensors = [InferTensor(f, "FP64", [1, 1], np.ones((1, 1))) for f in FEATURES]
        for name, decided in [("plain", None), ("logged", None), ("ruled", ["always"])]:
            [answer] = await v1.predict(plane, name, None, [instance], "r")
            assert answer.get("decisions") == decided, name
            response = await _infer(plane, name, None, InferRequest(tensors), "r")
            want = {} if decided is None else {"decisions": "always"}
            assert response.parameters == want, name
            assert response.outputs[0].data.shape == (1, 1)
    finally:
        await plane.repository.stop()


# --- metrics ------------------------------------------------------------------------------------


def _stage_count(plane: DataPlane, model: str, stage: str) -> float | None:
    return plane.metrics.registry.get_sample_value(
        "inferd_stage_seconds_count", {"model": model, "stage": stage}
    )


def _batches(plane: DataPlane, model: str, version: str, suffix: str) -> float | None:
    return plane.metrics.registry.get_sample_value(
        f"inferd_batch_size_{suffix}", {"model": model, "version": version}
    )


async def test_a_call_records_stage_latencies_and_batch_sizes(plane: DataPlane) -> None:
    for stage in STAGES:
        assert _stage_count(plane, "affine", stage) is None
    await v1.predict(plane, "affine", None, [[1, 2, 3, 4]] * 3, "r")
    for stage in ("queue", "preprocess", "model", "postprocess"):
        assert _stage_count(plane, "affine", stage) == 3.0, stage  # per item
    assert _stage_count(plane, "affine", "total") == 1.0  # per request
    assert _batches(plane, "affine", "1", "sum") == 3.0  # every item ran in some batch
    batches = _batches(plane, "affine", "1", "count")
    assert batches is not None and 1.0 <= batches <= 3.0

    await _infer(plane, "affine", None, InferRequest([_fp32("x", np.ones((2, 4)))]), "r")
    assert _stage_count(plane, "affine", "model") == 5.0
    assert _stage_count(plane, "affine", "total") == 2.0
    assert _batches(plane, "affine", "1", "sum") == 5.0
    assert _stage_count(plane, "iris", "total") is None  # labelled per model


async def test_a_failed_request_is_not_timed_as_a_whole(plane: DataPlane) -> None:
    with pytest.raises(BadRequestError):
        await v1.predict(plane, "affine", None, [[1, 2, 3]], "r")
    assert _stage_count(plane, "affine", "total") is None


async def test_queue_states_are_scraped_from_the_batchers(plane: DataPlane) -> None:
    states = sorted(plane.queue_states())
    assert states == [
        ("affine", "1", 0, 0),
        ("fixed", "1", 0, 0),
        ("house", "1", 0, 0),
        ("iris", "10", 0, 0),
        ("iris", "2", 0, 0),
    ]
    text = plane.metrics.render().decode()
    assert 'inferd_queue_depth{model="iris",version="10"} 0.0' in text
    assert 'inferd_batches_running{model="affine",version="1"} 0.0' in text


async def test_item_notes_become_response_parameters(tmp_path: Path) -> None:
    folder = tmp_path / "summer"
    onnx_models.masked_token_sum(folder / "1" / "model.onnx")
    onnx_models.word_tokenizer(folder / "tokenizer.json", ["a", "b", "c"])
    _write_yaml(
        folder,
        {
            "name": "summer",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}],
            "preprocess": [{"type": "text", "max_length": 2}],
        },
    )
    plane = _dataplane(tmp_path)
    await _start(plane)
    try:
        texts = np.array([[b"a"], [b"a b c"], [b"c"], [b"b b b"]], dtype=np.object_)
        tensor = InferTensor("text", "BYTES", [4, 1], texts)
        response = await _infer(plane, "summer", None, InferRequest(inputs=[tensor]), "r1")
        assert response.parameters == {
            "truncated_to_tokens": 2,
            "truncated_to_tokens_items": "1,3",
        }
        assert response.outputs[0].data.reshape(-1).tolist() == [2.0, 5.0, 4.0, 6.0]
        [one] = await v1.predict(plane, "summer", None, ["a b c"], "r2")
        assert one == {"total": [5.0], "parameters": {"truncated_to_tokens": 2}}
    finally:
        await plane.repository.stop()
