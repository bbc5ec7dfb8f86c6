"""Reading model.yaml: error messages that name their path, load_spec, load_labels and
environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferd.errors import SpecError
from inferd.spec import Environment, ModelSpec, load_labels, load_spec, parse_spec
from tests.unit.spec.documents import error, image_spec

# --- errors: each names its path -------------------------------------------------------------


def test_unknown_top_level_key_is_named() -> None:
    message = error({"name": "m", "batchng": {}})
    assert "batchng: unknown key" in message
    assert "check its spelling" in message


def test_unknown_nested_key_is_named_with_its_path() -> None:
    message = error({"name": "m", "batching": {"max_batch": 4}})
    assert "batching.max_batch: unknown key" in message


def test_unknown_key_in_a_stage_names_the_stage_path() -> None:
    message = error(image_spec(sise=[4, 4]))
    assert "preprocess.0.sise: unknown key" in message


def test_every_problem_is_listed() -> None:
    message = error({"name": "m", "inputs": [{"name": "x", "datatype": "nope", "shape": [0]}]})
    lines = message.splitlines()
    assert lines[0] == "model.yaml is not valid:"
    assert any(line.strip().startswith("inputs.0.datatype:") for line in lines)
    assert any(line.strip().startswith("inputs.0.shape:") for line in lines)


def test_source_names_the_file() -> None:
    with pytest.raises(SpecError, match=r"^models/x/model.yaml is not valid:"):
        parse_spec({"name": "m", "bogus": 1}, source="models/x/model.yaml")


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


# --- environment variables ----------------------------------------------------------------------


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
    spec = load_spec(tmp_path, Environment(frozenset({"HOOK_URL", "EMPTY", "TIMEOUT"})))
    assert spec is not None
    action = spec.decide[0].actions[0]
    assert action.type == "webhook" and action.url == "${HOOK_URL}"  # read when delivered
    assert action.timeout_s == 2.5
    assert spec.description == "costs $5, default fallback, empty was empty"


WEBHOOK_SPEC = (
    "task: classification\n"
    "labels: [cold, hot]\n"
    "inputs: [{name: x, datatype: FP32, shape: [1]}]\n"
    "postprocess: [{type: classify}]\n"
    "decide:\n"
    "  - decision: alert\n"
    "    when: 'true'\n"
    "    actions:\n"
    "      - type: webhook\n"
    "        url: '${HOOK_URL:-http://127.0.0.1:9/default}'\n"
    "        headers: {Authorization: 'Bearer ${HOOK_TOKEN}'}\n"
)


def test_a_variable_not_allowed_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERD_API_KEY", "the-servers-own-secret")
    monkeypatch.delenv("INFERD_ALLOW_ENV", raising=False)
    (tmp_path / "model.yaml").write_text("description: 'key: ${INFERD_API_KEY}'\n")
    with pytest.raises(SpecError, match="--allow-env INFERD_API_KEY") as refused:
        load_spec(tmp_path)
    assert "the-servers-own-secret" not in str(refused.value)
    # allowed by name (flag or INFERD_ALLOW_ENV), or by trusting the folder
    for environment in (
        Environment(frozenset({"INFERD_API_KEY"})),
        Environment.for_process(trust_code=True),
    ):
        spec = load_spec(tmp_path, environment)
        assert spec is not None and spec.description == "key: the-servers-own-secret"
    monkeypatch.setenv("INFERD_ALLOW_ENV", "OTHER, INFERD_API_KEY")
    spec = load_spec(tmp_path)
    assert spec is not None and spec.description == "key: the-servers-own-secret"


def test_an_unset_variable_not_allowed_gives_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_URL", raising=False)
    monkeypatch.delenv("INFERD_ALLOW_ENV", raising=False)
    (tmp_path / "model.yaml").write_text("description: 'to ${HOOK_URL:-nowhere}'\n")
    spec = load_spec(tmp_path)
    assert spec is not None and spec.description == "to nowhere"
    monkeypatch.setenv("HOOK_URL", "http://set.example")  # set: the operator meant it
    with pytest.raises(SpecError, match="--allow-env HOOK_URL"):
        load_spec(tmp_path)


def test_webhook_secrets_stay_variables_until_delivery_but_are_checked_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_URL", raising=False)
    monkeypatch.delenv("HOOK_TOKEN", raising=False)
    (tmp_path / "model.yaml").write_text(WEBHOOK_SPEC)
    allowed = Environment(frozenset({"HOOK_URL", "HOOK_TOKEN"}))
    with pytest.raises(SpecError, match="HOOK_TOKEN is not set"):
        load_spec(tmp_path, allowed)
    monkeypatch.setenv("HOOK_TOKEN", "t0ken")
    spec = load_spec(tmp_path, allowed)
    assert spec is not None
    action = spec.decide[0].actions[0]
    assert action.type == "webhook"
    assert action.headers == {"Authorization": "Bearer ${HOOK_TOKEN}"}
    assert action.url == "${HOOK_URL:-http://127.0.0.1:9/default}"
    monkeypatch.setenv("HOOK_URL", "ftp://wrong")
    with pytest.raises(SpecError, match="expands to 'ftp://wrong'"):
        load_spec(tmp_path, allowed)


def test_an_unset_environment_variable_without_default_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFERD_TEST_MISSING", raising=False)
    (tmp_path / "model.yaml").write_text("description: ${INFERD_TEST_MISSING}\n")
    with pytest.raises(SpecError, match=r"INFERD_TEST_MISSING is not set.*INFERD_TEST_MISSING:-"):
        load_spec(tmp_path, Environment.for_process(trust_code=True))


def test_environment_values_cannot_add_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNEAKY", "x\nbackend: python")
    (tmp_path / "model.yaml").write_text("description: ${SNEAKY}\n")
    spec = load_spec(tmp_path, Environment(frozenset({"SNEAKY"})))
    assert spec is not None and spec.backend == "onnx" and spec.description == "x\nbackend: python"
