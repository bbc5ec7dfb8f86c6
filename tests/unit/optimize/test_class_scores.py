"""Per-class precision/recall of a classifier's eval, and eval.min_recall pass/fail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inferd.errors import SpecError
from inferd.optimize.evaluate import ClassScores, EvalReport, class_scores, evaluate
from inferd.repository import load_model
from inferd.spec import parse_spec
from tests.support import onnx_models

# --- class_scores on hand-worked cases ----------------------------------------------------------


def test_binary_by_hand() -> None:
    # targets   m m m m b b b b b b
    # predicted m m m b m b b b b b
    # m: 4 cases, 3 found; 4 flagged, 3 right → precision 3/4, recall 3/4
    # b: 6 cases, 5 found; 6 flagged, 5 right → precision 5/6, recall 5/6
    targets = ["m"] * 4 + ["b"] * 6
    predicted = ["m", "m", "m", "b", "m", "b", "b", "b", "b", "b"]
    scores = class_scores(predicted, targets, ["m", "b"])
    assert list(scores) == ["m", "b"]
    assert scores["m"] == ClassScores(support=4, predicted=4, correct=3)
    assert scores["m"].precision == pytest.approx(0.75)
    assert scores["m"].recall == pytest.approx(0.75)
    assert scores["b"].precision == pytest.approx(5 / 6)
    assert scores["b"].recall == pytest.approx(5 / 6)


def test_three_classes_by_hand() -> None:
    # a: targets 3, predicted 2 (both right)      → precision 1, recall 2/3
    # b: targets 2, predicted 4 (2 right)         → precision 1/2, recall 1
    # c: targets 2, predicted 1 (1 right)         → precision 1, recall 1/2
    targets = ["a", "a", "a", "b", "b", "c", "c"]
    predicted = ["a", "a", "b", "b", "b", "b", "c"]
    scores = class_scores(predicted, targets, ["a", "b", "c"])
    assert [(s.precision, s.recall, s.support) for s in scores.values()] == [
        (1.0, pytest.approx(2 / 3), 3),
        (0.5, 1.0, 2),
        (1.0, 0.5, 2),
    ]


def test_a_class_never_predicted_has_no_precision() -> None:
    scores = class_scores(["b", "b", "b"], ["a", "b", "b"], ["a", "b"])
    assert scores["a"] == ClassScores(support=1, predicted=0, correct=0)
    assert scores["a"].precision is None
    assert scores["a"].recall == 0.0
    assert scores["b"].precision == pytest.approx(2 / 3)


def test_a_class_absent_from_targets_has_no_recall() -> None:
    scores = class_scores(["a", "c", "b"], ["a", "b", "b"], ["a", "b", "c"])
    assert scores["c"] == ClassScores(support=0, predicted=1, correct=0)
    assert scores["c"].recall is None
    assert scores["c"].precision == 0.0


def test_a_label_neither_predicted_nor_a_target() -> None:
    scores = class_scores(["a"], ["a"], ["a", "b"])
    assert scores["b"] == ClassScores(support=0, predicted=0, correct=0)
    assert (scores["b"].precision, scores["b"].recall) == (None, None)


def test_failed_examples_are_misses_of_their_class() -> None:
    scores = class_scores(["a", None, None], ["a", "a", "b"], ["a", "b"])
    assert scores["a"] == ClassScores(support=2, predicted=1, correct=1)
    assert scores["b"] == ClassScores(support=1, predicted=0, correct=0)


def test_classes_compare_as_text_and_unlabelled_ones_are_sorted() -> None:
    # No labels: numeric targets and string predictions are the same classes, sorted as text.
    scores = class_scores(["1", "0", "2"], [1, 0, 1])
    assert list(scores) == ["0", "1", "2"]
    assert scores["1"] == ClassScores(support=2, predicted=1, correct=1)
    # A target outside the labels (a typo in the eval data) is listed after them.
    assert list(class_scores(["a"], ["A"], ["b", "a"])) == ["b", "a", "A"]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        class_scores(["a", "b"], ["a"])


# --- EvalReport: threshold and min_recall together ----------------------------------------------


def _report(
    value: float, threshold: float | None, min_recall: dict[str, float] | None
) -> EvalReport:
    classes = {
        "malignant": ClassScores(support=10, predicted=9, correct=9),  # recall 0.9
        "benign": ClassScores(support=10, predicted=11, correct=10),  # recall 1.0
        "other": ClassScores(support=0, predicted=0, correct=0),
    }
    return EvalReport(
        "m", 1, "accuracy", value, 20, 0, threshold, classes=classes, min_recall=min_recall
    )


@pytest.mark.parametrize(
    ("value", "threshold", "min_recall", "passed", "failures"),
    [
        (0.95, 0.9, {"malignant": 0.9}, True, []),
        (0.95, 0.9, {"malignant": 0.85, "benign": 1.0}, True, []),
        (0.95, 0.9, {"malignant": 0.95}, False, ["recall of 'malignant' 0.9000 is below"]),
        (0.85, 0.9, {"malignant": 0.5}, False, ["accuracy 0.8500 is below the threshold 0.9"]),
        (0.85, 0.9, {"malignant": 0.95}, False, ["accuracy 0.85", "recall of 'malignant'"]),
        (0.5, None, {"malignant": 0.9}, True, []),
        (0.5, None, {"malignant": 0.91}, False, ["recall of 'malignant' 0.9000"]),
        (0.95, 0.9, None, True, []),
        (0.5, None, None, None, []),
        (0.95, 0.9, {"other": 0.5}, False, ["no 'other' examples"]),
    ],
)
def test_passed_needs_threshold_and_every_recall(
    value: float,
    threshold: float | None,
    min_recall: dict[str, float] | None,
    passed: bool | None,
    failures: list[str],
) -> None:
    report = _report(value, threshold, min_recall)
    assert report.passed is passed
    assert len(report.failures) == len(failures)
    for problem, words in zip(report.failures, failures, strict=True):
        assert words in problem


def test_lower_is_better_failure_says_above() -> None:
    report = EvalReport("m", 1, "mae", 0.4, 10, 0, 0.3)
    assert report.failures == ["mae 0.4000 is above the threshold 0.3"]


# --- the spec -----------------------------------------------------------------------------------


def test_spec_min_recall() -> None:
    spec = parse_spec(
        {
            "name": "m",
            "eval": {"data": "e.jsonl", "metric": "accuracy", "min_recall": {"malignant": 0.9}},
        }
    )
    assert spec.eval is not None and spec.eval.min_recall == {"malignant": 0.9}
    assert parse_spec({"name": "m", "eval": {"data": "e.jsonl", "metric": "r2"}}).eval is not None


@pytest.mark.parametrize(
    ("eval_block", "words"),
    [
        ({"metric": "r2", "min_recall": {"a": 0.5}}, 'min_recall applies to metric "accuracy"'),
        ({"metric": "accuracy", "min_recall": {"a": 1.5}}, "eval.min_recall.a"),
        ({"metric": "accuracy", "min_recall": {"a": -0.1}}, "eval.min_recall.a"),
        ({"metric": "accuracy", "min_recall": {}}, "at least one class"),
    ],
)
def test_spec_bad_min_recall(eval_block: dict[str, object], words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"name": "m", "eval": {"data": "e.jsonl", **eval_block}})
    assert words in caught.value.message


# --- evaluate() through the serving pipeline ----------------------------------------------------


def _classifier(root: Path, eval_block: str, labels: bool = True) -> Path:
    """The affine 4→3 classifier with labels a, b, c; four examples whose targets are what the
    model predicts except the third (a 'c' target it calls something else), and one that fails
    (wrong width) with target 'a'."""
    folder = root / "cls"
    onnx_models.affine(folder / "1" / "model.onnx")
    (folder / "model.yaml").write_text(
        "task: classification\n"
        "postprocess: [{type: classify, top_k: 1}]\n"
        + ("labels: [a, b, c]\n" if labels else "")
        + f"eval: {eval_block}\n",
        encoding="utf-8",
    )
    weight, bias = onnx_models.affine_weights()
    rows = np.random.default_rng(5).normal(size=(4, 4)).astype(np.float32)
    names = ["a", "b", "c"] if labels else ["0", "1", "2"]
    predicted = [names[int(np.argmax(row @ weight + bias))] for row in rows]
    targets = list(predicted)
    wrong = names[2] if predicted[2] != names[2] else names[0]
    targets[2] = wrong
    lines = [
        json.dumps({"instance": row.tolist(), "target": target})
        for row, target in zip(rows, targets, strict=True)
    ]
    lines.append(json.dumps({"instance": [1.0, 2.0], "target": names[0]}))  # fails
    (folder / "eval.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "expected.json").write_text(json.dumps([predicted, targets]), encoding="utf-8")
    return folder


def test_evaluate_reports_each_class(tmp_path: Path) -> None:
    folder = _classifier(tmp_path, "{data: eval.jsonl, metric: accuracy, threshold: 0.5}")
    report = evaluate(load_model(folder))
    predicted, targets = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    assert (report.count, report.failed) == (5, 1)
    assert report.value == pytest.approx(3 / 5)
    expected = class_scores([*predicted, None], [*targets, "a"], ["a", "b", "c"])
    assert report.classes == expected
    assert report.classes is not None and list(report.classes) == ["a", "b", "c"]
    assert sum(s.support for s in report.classes.values()) == 5
    assert report.min_recall is None and report.passed is True


def test_evaluate_min_recall_fails_the_eval(tmp_path: Path) -> None:
    block = "{data: eval.jsonl, metric: accuracy, threshold: 0.5, min_recall: {a: 1.0}}"
    report = evaluate(load_model(_classifier(tmp_path, block)))
    assert report.classes is not None
    recall = report.classes["a"].recall
    assert recall is not None and recall < 1.0  # the failed 'a' example is a miss
    assert report.passed is False
    assert report.failures == [f"recall of 'a' {recall:.4f} is below the required 1.0"]


def test_evaluate_unknown_min_recall_class_is_an_error(tmp_path: Path) -> None:
    block = "{data: eval.jsonl, metric: accuracy, min_recall: {malignant: 0.9, a: 0.5}}"
    with pytest.raises(SpecError) as caught:
        evaluate(load_model(_classifier(tmp_path, block)))
    assert caught.value.message == (
        "eval.min_recall names unknown class(es) 'malignant'; the model's labels are: a, b, c"
    )


def test_evaluate_unknown_class_without_labels(tmp_path: Path) -> None:
    block = "{data: eval.jsonl, metric: accuracy, min_recall: {7: 0.9, 1: 0.5}}"
    with pytest.raises(SpecError, match=r"unknown class\(es\) '7'; the eval data's"):
        evaluate(load_model(_classifier(tmp_path, block, labels=False)))


def test_spec_min_recall_int_keys_are_labels() -> None:
    block = {"data": "e.jsonl", "metric": "accuracy", "min_recall": {3: 0.9, "x": 0.5}}
    spec = parse_spec({"name": "m", "eval": block})
    assert spec.eval is not None and spec.eval.min_recall == {"3": 0.9, "x": 0.5}
