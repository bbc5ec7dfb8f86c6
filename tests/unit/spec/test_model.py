"""The root ModelSpec: valid specs, defaults, and the checks that span its sections."""

from __future__ import annotations

from typing import Any

import pytest

from inferd.errors import SpecError
from inferd.spec import ClassifyStage, ImageStage, RegressStage, TabularStage, parse_spec
from tests.unit.spec.documents import IMAGE_INPUT, error

# --- valid specs ------------------------------------------------------------------------------


def test_minimal_spec_has_defaults() -> None:
    spec = parse_spec({"name": "bare"})
    assert spec.task == "tensor"
    assert spec.backend == "onnx"
    assert spec.batched is True
    assert spec.max_batch_size == 32
    assert spec.artifact_name() == "model.onnx"
    assert spec.versions == "latest"


def test_full_classification_spec_parses_every_section() -> None:
    spec = parse_spec(
        {
            "name": "digits",
            "task": "classification",
            "inputs": [IMAGE_INPUT],
            "preprocess": [
                {
                    "type": "image",
                    "color": "L",
                    "size": [16, 16],
                    "invert": "auto",
                    "layout": "HW",
                    "mean": [0.5],
                    "std": [0.25],
                }
            ],
            "postprocess": [{"type": "classify", "top_k": 3, "softmax": False}],
            "labels": ["a", "b"],
            "batching": {"max_batch_size": 0, "max_delay_ms": 2.5, "max_queue": 10},
            "runtime": {"threads": 2, "instances": 3},
            "eval": {"data": "eval.jsonl", "metric": "accuracy", "threshold": 0.9},
            "versions": [1, 3],
        }
    )
    stage = spec.preprocess[0]
    assert isinstance(stage, ImageStage)
    assert stage.size == (16, 16)
    assert stage.invert == "auto"
    assert stage.std == [0.25]
    post = spec.postprocess[0]
    assert isinstance(post, ClassifyStage)
    assert (post.top_k, post.softmax) == (3, False)
    assert spec.batched is False
    assert spec.batching.max_delay_ms == 2.5
    assert spec.runtime.instances == 3
    assert spec.eval is not None and spec.eval.threshold == 0.9
    assert spec.versions == [1, 3]


def test_regression_with_regress_stage_and_tabular_preprocess() -> None:
    spec = parse_spec(
        {
            "name": "house",
            "task": "regression",
            "inputs": [{"name": "rooms", "datatype": "FP64", "shape": [1]}],
            "preprocess": [{"type": "tabular", "features": ["rooms"], "mean": [3], "std": [2]}],
            "postprocess": [{"type": "regress", "names": ["price"], "mean": [1], "std": [10]}],
        }
    )
    assert isinstance(spec.preprocess[0], TabularStage)
    assert isinstance(spec.postprocess[0], RegressStage)
    assert spec.postprocess[0].names == ["price"]


def test_explicit_artifact_wins() -> None:
    assert parse_spec({"name": "m", "artifact": "net.onnx"}).artifact_name() == "net.onnx"


def test_files_in_subfolders_are_fine() -> None:
    spec = parse_spec({"name": "m", "labels": "meta/labels.txt", "artifact": "onnx/model.onnx"})
    assert spec.labels == "meta/labels.txt" and spec.artifact_name() == "onnx/model.onnx"


def test_spec_is_frozen() -> None:
    spec = parse_spec({"name": "m"})
    with pytest.raises(ValueError):
        spec.name = "other"  # type: ignore[misc]


# --- errors that span sections ------------------------------------------------------------


def test_duplicate_input_names() -> None:
    inputs = [{"name": "x", "datatype": "FP32"}, {"name": "x", "datatype": "FP32"}]
    assert "input names must be unique" in error({"name": "m", "inputs": inputs})


def test_classification_without_classify_stage() -> None:
    message = error({"name": "m", "task": "classification"})
    assert "(top level)" in message
    assert 'task "classification" needs a postprocess stage of type "classify"' in message


def test_classification_with_the_wrong_stage() -> None:
    message = error({"name": "m", "task": "classification", "postprocess": [{"type": "regress"}]})
    assert 'needs a postprocess stage of type "classify"' in message


def test_regression_without_regress_stage() -> None:
    message = error({"name": "m", "task": "regression"})
    assert 'task "regression" needs a postprocess stage of type "regress"' in message


def test_at_most_one_postprocess_stage() -> None:
    message = error({"name": "m", "postprocess": [{"type": "classify"}, {"type": "regress"}]})
    assert "at most one postprocess stage" in message


def test_preprocess_needs_declared_inputs() -> None:
    message = error({"name": "m", "preprocess": [{"type": "image", "size": [8, 8]}]})
    assert "must declare its wire `inputs`" in message


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"inputs": [{"name": "x", "datatype": "FP32"}]},
        {"outputs": [{"name": "y", "datatype": "FP32"}]},
    ],
)
def test_python_backend_needs_inputs_and_outputs(extra: dict[str, Any]) -> None:
    message = error({"name": "m", "backend": "python", **extra})
    assert "python-backend model must declare its `inputs` and `outputs`" in message


def test_unknown_backend_and_task_are_refused() -> None:
    assert "backend" in error({"name": "m", "backend": "tensorflow"})
    assert "task" in error({"name": "m", "task": "dreaming"})


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"labels": "../../etc/passwd"}, "labels"),
        ({"artifact": "/etc/model.onnx"}, "artifact"),
        ({"eval": {"data": "../other/test.jsonl", "metric": "r2"}}, "eval.data"),
        ({"python": {"module": "../../evil.py"}}, "python.module"),
    ],
)
def test_files_named_in_the_spec_stay_inside_the_model_folder(
    extra: dict[str, object], where: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"name": "m", **extra})
    assert f"{where}: " in caught.value.message
    assert "inside the model folder" in caught.value.message


def test_generation_runs_on_the_torch_engine_only() -> None:
    spec = parse_spec({"name": "m", "task": "generation", "backend": "torch"})
    assert spec.artifact_name() == "config.json"
    assert 'task "generation" runs on backend "torch"' in error({"name": "m", "task": "generation"})
    assert 'task "generation" runs on backend "torch"' in error({"name": "m", "backend": "torch"})
    assert "generation.max_sequences" in error(
        {"name": "m", "task": "generation", "backend": "torch", "generation": {"max_sequences": 0}}
    )
