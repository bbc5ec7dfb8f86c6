"""model.yaml validation: valid specs, each validator's error, and where the error points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferd.errors import SpecError
from inferd.spec import (
    ClassifyStage,
    ImageStage,
    ModelSpec,
    RegressStage,
    TabularStage,
    load_labels,
    load_spec,
    parse_spec,
)

IMAGE_INPUT = {"name": "image", "datatype": "BYTES", "shape": [1]}


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    return caught.value.message


def _image_spec(**stage: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "inputs": [IMAGE_INPUT],
        "preprocess": [{"type": "image", "size": [8, 8], **stage}],
    }


def _tabular_spec(**stage: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "inputs": [{"name": "a", "datatype": "FP32", "shape": [1]}],
        "preprocess": [{"type": "tabular", "features": ["a", "b"], **stage}],
    }


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


def test_datatype_is_case_insensitive_and_normalised() -> None:
    spec = parse_spec(
        {"name": "m", "inputs": [{"name": "x", "datatype": "fp32", "shape": [-1, 3]}]}
    )
    assert spec.inputs[0].datatype == "FP32"
    assert spec.inputs[0].shape == [-1, 3]


def test_tensor_shape_defaults_to_any_length() -> None:
    spec = parse_spec({"name": "m", "inputs": [{"name": "x", "datatype": "INT64"}]})
    assert spec.inputs[0].shape == [-1]


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


def test_explicit_artifact_wins() -> None:
    assert parse_spec({"name": "m", "artifact": "net.onnx"}).artifact_name() == "net.onnx"


# --- errors: each names its path -------------------------------------------------------------


def test_unknown_top_level_key_is_named() -> None:
    message = _error({"name": "m", "batchng": {}})
    assert "batchng: unknown key" in message
    assert "check its spelling" in message


def test_unknown_nested_key_is_named_with_its_path() -> None:
    message = _error({"name": "m", "batching": {"max_batch": 4}})
    assert "batching.max_batch: unknown key" in message


def test_unknown_key_in_a_stage_names_the_stage_path() -> None:
    message = _error(_image_spec(sise=[4, 4]))
    assert "preprocess.0.sise: unknown key" in message


def test_bad_datatype_lists_the_allowed_ones() -> None:
    message = _error({"name": "m", "inputs": [{"name": "x", "datatype": "float"}]})
    assert "inputs.0.datatype: unknown datatype 'float'" in message
    assert "FP32" in message and "BYTES" in message


@pytest.mark.parametrize("shape", [[0], [3, -2], [-5]])
def test_bad_shape_is_refused(shape: list[int]) -> None:
    message = _error({"name": "m", "outputs": [{"name": "y", "datatype": "FP32", "shape": shape}]})
    assert f"outputs.0.shape: shape {shape}" in message
    assert "positive size or -1" in message


def test_every_problem_is_listed() -> None:
    message = _error({"name": "m", "inputs": [{"name": "x", "datatype": "nope", "shape": [0]}]})
    lines = message.splitlines()
    assert lines[0] == "model.yaml is not valid:"
    assert any(line.strip().startswith("inputs.0.datatype:") for line in lines)
    assert any(line.strip().startswith("inputs.0.shape:") for line in lines)


def test_duplicate_input_names() -> None:
    inputs = [{"name": "x", "datatype": "FP32"}, {"name": "x", "datatype": "FP32"}]
    assert "input names must be unique" in _error({"name": "m", "inputs": inputs})


def test_image_std_length_names_the_field_path() -> None:
    message = _error(_image_spec(std=[1.0, 2.0]))
    assert "preprocess.0.std" in message
    assert "std has 2 values; give 1 or 3" in message


def test_image_mean_length_depends_on_color() -> None:
    message = _error(_image_spec(color="L", mean=[0.1, 0.2, 0.3]))
    assert "mean has 3 values" in message
    # three values are fine for a colour image
    spec = parse_spec(_image_spec(color="RGB", mean=[0.1, 0.2, 0.3], std=[1, 2, 3]))
    assert spec.preprocess[0].mean == [0.1, 0.2, 0.3]


def test_image_std_zero_refused() -> None:
    assert "std must not contain 0" in _error(_image_spec(std=[0.0]))


def test_image_size_must_be_positive() -> None:
    assert "size is [width, height], both positive" in _error(_image_spec(size=[0, 8]))


def test_image_hw_layout_needs_grey() -> None:
    message = _error(_image_spec(layout="HW", color="RGB"))
    assert 'layout "HW" has no channel axis' in message


def test_unknown_stage_type_is_refused() -> None:
    message = _error({"name": "m", "inputs": [IMAGE_INPUT], "preprocess": [{"type": "video"}]})
    assert "preprocess.0" in message
    assert "'image', 'tabular'" in message


def test_tabular_std_length_names_the_field_path() -> None:
    message = _error(_tabular_spec(std=[1.0]))
    assert "preprocess.0.std" in message
    assert "std has 1 values but there are 2 features" in message


def test_tabular_mean_length() -> None:
    message = _error(_tabular_spec(mean=[1.0, 2.0, 3.0]))
    assert "mean has 3 values but there are 2 features" in message


def test_tabular_features_must_be_unique_and_present() -> None:
    assert "features must be unique" in _error(_tabular_spec(features=["a", "a"]))
    assert "at least one feature" in _error(_tabular_spec(features=[]))


def test_tabular_std_zero() -> None:
    assert "std must not contain 0" in _error(_tabular_spec(std=[1.0, 0.0]))


def test_classification_without_classify_stage() -> None:
    message = _error({"name": "m", "task": "classification"})
    assert "(top level)" in message
    assert 'task "classification" needs a postprocess stage of type "classify"' in message


def test_classification_with_the_wrong_stage() -> None:
    message = _error({"name": "m", "task": "classification", "postprocess": [{"type": "regress"}]})
    assert 'needs a postprocess stage of type "classify"' in message


def test_regression_without_regress_stage() -> None:
    message = _error({"name": "m", "task": "regression"})
    assert 'task "regression" needs a postprocess stage of type "regress"' in message


def test_regress_scaling_that_cannot_fit_its_names_is_caught_at_load() -> None:
    # Two named values can be scaled by one mean or two, never three: that is a typo in
    # model.yaml, and the spec promises to catch those when the file is read.
    message = _error(
        {
            "name": "m",
            "task": "regression",
            "postprocess": [{"type": "regress", "names": ["a", "b"], "mean": [1.0, 2.0, 3.0]}],
        }
    )
    assert "postprocess.0" in message
    assert "mean" in message


def test_at_most_one_postprocess_stage() -> None:
    message = _error({"name": "m", "postprocess": [{"type": "classify"}, {"type": "regress"}]})
    assert "at most one postprocess stage" in message


def test_top_k_must_be_positive() -> None:
    message = _error(
        {"name": "m", "task": "classification", "postprocess": [{"type": "classify", "top_k": 0}]}
    )
    assert "postprocess.0" in message and "top_k" in message


def test_preprocess_needs_declared_inputs() -> None:
    message = _error({"name": "m", "preprocess": [{"type": "image", "size": [8, 8]}]})
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
    message = _error({"name": "m", "backend": "python", **extra})
    assert "python-backend model must declare its `inputs` and `outputs`" in message


def test_unknown_backend_and_task_are_refused() -> None:
    assert "backend" in _error({"name": "m", "backend": "tensorflow"})
    assert "task" in _error({"name": "m", "task": "dreaming"})


def test_negative_batching_refused() -> None:
    assert "batching.max_batch_size" in _error({"name": "m", "batching": {"max_batch_size": -1}})


def test_bad_eval_metric() -> None:
    message = _error({"name": "m", "eval": {"data": "x.jsonl", "metric": "f1"}})
    assert "eval.metric" in message


def test_source_names_the_file() -> None:
    with pytest.raises(SpecError, match=r"^models/x/model.yaml is not valid:"):
        parse_spec({"name": "m", "bogus": 1}, source="models/x/model.yaml")


def test_spec_is_frozen() -> None:
    spec = parse_spec({"name": "m"})
    with pytest.raises(ValueError):
        spec.name = "other"  # type: ignore[misc]


# --- load_spec ----------------------------------------------------------------------------------


def test_load_spec_absent_is_none(tmp_path: Path) -> None:
    assert load_spec(tmp_path) is None


def test_load_spec_reads_yaml_and_defaults_name_to_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mymodel"
    folder.mkdir()
    (folder / "model.yaml").write_text(
        "task: regression\npostprocess:\n  - {type: regress, names: [y]}\n", encoding="utf-8"
    )
    spec = load_spec(folder)
    assert spec is not None
    assert spec.name == "mymodel"
    assert spec.task == "regression"


def test_load_spec_keeps_an_explicit_name(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text("name: other\n", encoding="utf-8")
    spec = load_spec(tmp_path)
    assert spec is not None and spec.name == "other"


def test_load_spec_empty_file_is_a_tensor_model(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text("", encoding="utf-8")
    spec = load_spec(tmp_path)
    assert spec is not None
    assert spec.name == tmp_path.name and spec.task == "tensor"


def test_load_spec_invalid_yaml(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path)
    assert str(tmp_path / "model.yaml") in caught.value.message
    assert "is not valid YAML" in caught.value.message


def test_load_spec_non_mapping(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(SpecError, match="must be a mapping of keys"):
        load_spec(tmp_path)


def test_load_spec_validation_error_names_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text("runtime: {thread: 2}\n", encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path)
    assert caught.value.message.startswith(f"{tmp_path / 'model.yaml'} is not valid:")
    assert "runtime.thread: unknown key" in caught.value.message


# --- load_labels --------------------------------------------------------------------------------


def test_load_labels_none(tmp_path: Path) -> None:
    assert load_labels(ModelSpec(name="m"), tmp_path) is None


def test_load_labels_from_list(tmp_path: Path) -> None:
    spec = parse_spec({"name": "m", "labels": ["cat", "dog"]})
    assert load_labels(spec, tmp_path) == ["cat", "dog"]


def test_load_labels_from_file_skips_blank_lines_and_strips(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text(" zero \none\n\n  \ntwo\n", encoding="utf-8")
    spec = parse_spec({"name": "m", "labels": "labels.txt"})
    assert load_labels(spec, tmp_path) == ["zero", "one", "two"]


def test_load_labels_missing_file(tmp_path: Path) -> None:
    spec = parse_spec({"name": "m", "labels": "classes.txt"})
    with pytest.raises(SpecError) as caught:
        load_labels(spec, tmp_path)
    assert str(tmp_path / "classes.txt") in caught.value.message
    assert "does not exist" in caught.value.message
    assert "one label per line" in caught.value.message


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


def test_files_in_subfolders_are_fine() -> None:
    spec = parse_spec({"name": "m", "labels": "meta/labels.txt", "artifact": "onnx/model.onnx"})
    assert spec.labels == "meta/labels.txt" and spec.artifact_name() == "onnx/model.onnx"


# --- audio and detection --------------------------------------------------------------------


def _audio_spec(**stage: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1]}],
        "preprocess": [{"type": "audio", **stage}],
    }


def test_audio_stage_errors_name_the_stage_path() -> None:
    message = _error(_audio_spec(n_fft=256, win_length=400))
    assert "preprocess.0: Value error" not in message
    assert "preprocess.0: win_length must not exceed n_fft" in message


def test_audio_layout_must_suit_the_features() -> None:
    assert 'layout "T" or "1T" goes with features "waveform"' in _error(
        _audio_spec(features="waveform", layout="MT")
    )


def test_audio_limits_are_checked_at_load() -> None:
    assert "f_max 9000.0 is above half the sample rate (8000.0)" in _error(_audio_spec(f_max=9000))
    assert "duration_s must not exceed max_duration_s" in _error(
        _audio_spec(duration_s=10, max_duration_s=5)
    )
    assert "preprocess.0.silence_db" in _error(_audio_spec(silence_db=3))
    assert "shorter than one n_fft window" in _error(_audio_spec(duration_s=0.01, n_fft=400))


def test_detection_needs_a_detect_stage_with_sane_thresholds() -> None:
    spec = {"name": "m", "task": "detection", "postprocess": [{"type": "detect"}]}
    assert parse_spec(spec).postprocess[0].type == "detect"
    bad = {**spec, "postprocess": [{"type": "detect", "iou_threshold": 0}]}
    assert "postprocess.0.iou_threshold" in _error(bad)


def test_map_metric_takes_an_iou() -> None:
    spec = parse_spec({"name": "m", "eval": {"data": "e.jsonl", "metric": "map", "iou": 0.75}})
    assert spec.eval is not None and spec.eval.iou == 0.75


def test_generation_runs_on_the_torch_engine_only() -> None:
    spec = parse_spec({"name": "m", "task": "generation", "backend": "torch"})
    assert spec.artifact_name() == "config.json"
    assert 'task "generation" runs on backend "torch"' in _error(
        {"name": "m", "task": "generation"}
    )
    assert 'task "generation" runs on backend "torch"' in _error({"name": "m", "backend": "torch"})
    assert "generation.max_sequences" in _error(
        {"name": "m", "task": "generation", "backend": "torch", "generation": {"max_sequences": 0}}
    )


# --- decide rules, prediction log and environment variables --------------------------------


def _classifier(**extra: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "task": "classification",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}],
        "postprocess": [{"type": "classify"}],
        "labels": ["no", "yes"],
        **extra,
    }


def test_decide_rules_and_actions_parse() -> None:
    spec = parse_spec(
        _classifier(
            decide=[
                {
                    "decision": "alert",
                    "when": 'label == "yes"',
                    "actions": [
                        {"type": "webhook", "url": "http://127.0.0.1:9/hook", "max_attempts": 3},
                        {"type": "log", "level": "warning"},
                        {"type": "python", "entry": "acts.py:notify"},
                    ],
                }
            ],
            prediction_log={"sample_rate": 0.5, "inputs": ["x"]},
        )
    )
    kinds = [action.type for action in spec.decide[0].actions]
    assert kinds == ["webhook", "log", "python"]
    assert spec.prediction_log is not None and spec.prediction_log.sample_rate == 0.5


def test_decision_names_must_be_unique() -> None:
    rule = {"decision": "alert", "when": "true"}
    assert "its own decision name" in _error(_classifier(decide=[rule, rule]))


def test_decide_needs_a_task_with_a_prediction() -> None:
    message = _error({"name": "m", "decide": [{"decision": "a", "when": "true"}]})
    assert 'task "tensor" has none' in message


def test_webhook_url_must_be_http() -> None:
    rule = {"decision": "a", "when": "true", "actions": [{"type": "webhook", "url": "ftp://x/y"}]}
    message = _error(_classifier(decide=[rule]))
    assert "decide.0.actions.0.url" in message and "http:// or https://" in message


def test_python_action_entry_must_name_a_file_and_function_inside_the_folder() -> None:
    for entry in ("acts.py", "acts.py:not a name", "../acts.py:f", "/abs.py:f"):
        rule = {"decision": "a", "when": "true", "actions": [{"type": "python", "entry": entry}]}
        assert "decide.0.actions.0.entry" in _error(_classifier(decide=[rule])), entry


def test_prediction_log_inputs_must_be_inputs() -> None:
    message = _error(_classifier(prediction_log={"inputs": ["x", "nope"]}))
    assert "['nope']" in message


def test_environment_variables_fill_model_yaml_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", "http://127.0.0.1:9/from-env")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    (tmp_path / "model.yaml").write_text(
        "task: classification\n"
        "labels: [cold, hot]\n"
        "description: costs $$5, default ${UNSET_ONE:-fallback}, empty ${EMPTY:-was empty}\n"
        "inputs: [{name: x, datatype: FP32, shape: [1]}]\n"
        "postprocess: [{type: classify}]\n"
        "decide:\n"
        "  - decision: alert\n"
        "    when: 'true'\n"
        "    actions: [{type: webhook, url: '${HOOK_URL}', timeout_s: '${TIMEOUT:-2.5}'}]\n"
    )
    spec = load_spec(tmp_path)
    assert spec is not None
    action = spec.decide[0].actions[0]
    assert action.type == "webhook" and action.url == "http://127.0.0.1:9/from-env"
    assert action.timeout_s == 2.5
    assert spec.description == "costs $5, default fallback, empty was empty"


def test_an_unset_environment_variable_without_default_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFERD_TEST_MISSING", raising=False)
    (tmp_path / "model.yaml").write_text("description: ${INFERD_TEST_MISSING}\n")
    with pytest.raises(SpecError, match=r"INFERD_TEST_MISSING is not set.*INFERD_TEST_MISSING:-"):
        load_spec(tmp_path)


def test_environment_values_cannot_add_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNEAKY", "x\nbackend: python")
    (tmp_path / "model.yaml").write_text("description: ${SNEAKY}\n")
    spec = load_spec(tmp_path)
    assert spec is not None and spec.backend == "onnx" and spec.description == "x\nbackend: python"
