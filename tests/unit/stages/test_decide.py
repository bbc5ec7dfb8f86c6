"""The decide stage: rules checked against the model at load, then run per prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferd.errors import BadRequestError, SpecError
from inferd.spec import ModelSpec, TensorSpec, parse_spec
from inferd.stages import Prediction
from inferd.stages.decide import Rules, plain, prediction_fields

LABELS = ["malignant", "benign"]
INPUTS = [
    TensorSpec(name="mean_radius", datatype="FP32", shape=[1]),
    TensorSpec(name="note", datatype="BYTES", shape=[1]),
]


def _spec(task: str = "classification", **rule: Any) -> ModelSpec:
    postprocess = {
        "classification": {"type": "classify", "top_k": 2},
        "detection": {"type": "detect"},
        "regression": {"type": "regress"},
    }[task]
    return parse_spec(
        {
            "name": "m",
            "task": task,
            "inputs": [t.model_dump() for t in INPUTS],
            "postprocess": [postprocess],
            "decide": [{"decision": "review", "when": "true", **rule}],
        }
    )


def _rules(
    task: str = "classification", trust: bool = False, folder: Path | None = None, **rule: Any
) -> Rules:
    labels = LABELS if task != "regression" else None
    return Rules(_spec(task, **rule), labels, INPUTS, folder, trust)


def _classified(malignant: float) -> Prediction:
    probabilities = np.array([malignant, 1 - malignant], dtype=np.float32)
    order = np.argsort(-probabilities)
    top = [{"label": LABELS[i], "score": float(probabilities[i])} for i in order]
    return Prediction(
        fields={"label": top[0]["label"], "score": top[0]["score"], "top_k": top},
        tensors={"probabilities": probabilities},
    )


def _load_error(**kwargs: Any) -> str:
    with pytest.raises(SpecError) as caught:
        _rules(**kwargs)
    return caught.value.message


def test_a_rule_reads_probabilities_inputs_and_parameters() -> None:
    rules = _rules(
        when='probability("malignant") >= 0.3 and inputs.mean_radius > 10 '
        "and not parameters.dry_run"
    )
    assert rules.input_names == ["mean_radius"]
    decided = rules.decide(_classified(0.35), {"mean_radius": 17.5}, {})
    assert [rule.decision for rule in decided] == ["review"]
    assert rules.decide(_classified(0.29), {"mean_radius": 17.5}, {}) == []
    assert rules.decide(_classified(0.9), {"mean_radius": 9.0}, {}) == []
    assert rules.decide(_classified(0.9), {"mean_radius": 17.5}, {"dry_run": True}) == []


def test_label_and_prediction_paths_are_the_same_field() -> None:
    rules = _rules(when='label == "malignant" and prediction.score > 0.5')
    assert len(rules.decide(_classified(0.8), {}, {})) == 1
    assert rules.decide(_classified(0.2), {}, {}) == []


def test_rules_fire_in_model_yaml_order() -> None:
    spec = parse_spec(
        {
            "name": "m",
            "task": "classification",
            "inputs": [t.model_dump() for t in INPUTS],
            "postprocess": [{"type": "classify"}],
            "decide": [
                {"decision": "second_opinion", "when": "score < 0.9"},
                {"decision": "never", "when": "false"},
                {"decision": "malignant_case", "when": 'label in ["malignant"]'},
            ],
        }
    )
    rules = Rules(spec, LABELS, INPUTS, None, False)
    names = [rule.decision for rule in rules.decide(_classified(0.6), {}, {})]
    assert names == ["second_opinion", "malignant_case"]


def test_detection_rules_count_a_class() -> None:
    rules = _rules("detection", when='count("malignant") >= 2')
    box = [0.0, 0.0, 1.0, 1.0]
    two = Prediction(
        fields={
            "detections": [
                {"label": "malignant", "score": 0.9, "box": box},
                {"label": "benign", "score": 0.8, "box": box},
                {"label": "malignant", "score": 0.7, "box": box},
            ]
        },
        tensors={},
    )
    assert len(rules.decide(two, {}, {})) == 1
    one = Prediction(fields={"detections": two.fields["detections"][:2]}, tensors={})
    assert rules.decide(one, {}, {}) == []


def test_regression_rules_read_the_value() -> None:
    rules = _rules("regression", when="value > 250 or parameters.priority == 'high'")
    assert prediction_fields(_spec("regression")) == {"value", "values"}
    high = Prediction(fields={"value": 300.0}, tensors={})
    low = Prediction(fields={"value": 100.0}, tensors={})
    assert len(rules.decide(high, {}, {})) == 1
    assert rules.decide(low, {}, {}) == []
    assert len(rules.decide(low, {}, {"priority": "high"})) == 1


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("lable == 'malignant'", "unknown name 'lable'"),
        ("prediction.value > 3", "unknown name 'prediction.value'"),
        ("inputs.mean_radios > 3", "'inputs.mean_radios' is not an input of this model"),
        ('label == "malignnt"', "'malignnt', which is not a label of this model"),
        ('label in ["benign", "malign"]', "'malign', which is not a label"),
        ('probability("cancer") > 0.5', "probability() is compared with 'cancer'"),
        ("score >", "decide[0] (review).when: column 7"),
        ("count('x') > 1", "count"),
    ],
)
def test_a_rule_that_cannot_work_fails_when_the_model_loads(when: str, expected: str) -> None:
    assert expected in _load_error(when=when)


def test_rule_errors_at_request_time_name_the_rule() -> None:
    rules = _rules(when="parameters.priority > 3")
    with pytest.raises(BadRequestError, match="decision rule 'review'"):
        rules.decide(_classified(0.5), {}, {"priority": "urgent"})
    # an absent parameter is null, and ordering a null is simply false
    assert rules.decide(_classified(0.5), {}, {}) == []


def test_a_rule_must_be_true_or_false() -> None:
    rules = _rules(when="score + 1")
    with pytest.raises(BadRequestError, match="review"):
        rules.decide(_classified(0.5), {}, {})


def test_python_actions_need_trust_and_an_existing_file(tmp_path: Path) -> None:
    action = [{"type": "python", "entry": "acts.py:notify"}]
    assert "--trust-code" in _load_error(actions=action, folder=tmp_path)
    message = _load_error(actions=action, folder=tmp_path, trust=True)
    assert "acts.py does not exist" in message
    (tmp_path / "acts.py").write_text("def notify(event):\n    pass\n")
    assert _rules(actions=action, folder=tmp_path, trust=True).rules[0].actions[0].type == "python"


def test_plain_values_for_rules_and_the_log() -> None:
    assert plain(np.array([3.5], dtype=np.float32)) == 3.5
    assert plain(np.array([b"hello"], dtype=np.object_)) == "hello"
    assert plain(np.array([[1, 2], [3, 4]])) == [[1, 2], [3, 4]]
    assert plain(np.zeros(5000)) is None
    assert plain(b"\x89PNG\r\n\x1a\n\x00") is None  # an image's bytes are never kept
    assert plain("text") == "text"
