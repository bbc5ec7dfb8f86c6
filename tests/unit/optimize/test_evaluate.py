"""Evaluation: metrics on hand-computed cases, eval data loading, pass/fail, a real run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from inferd.errors import SpecError
from inferd.optimize.evaluate import (
    EvalReport,
    evaluate,
    history_of,
    load_examples,
    mase,
    score,
    seasonal_naive,
)
from inferd.repository import load_model
from tests.support import onnx_models


def test_accuracy_compares_as_text() -> None:
    assert score("accuracy", ["1", "2", "3", "4"], [1, 2, 0, "4"]) == 0.75


def test_mae() -> None:
    # errors: 1, -2, 0.5 → mean |e| = 3.5 / 3
    assert score("mae", [2.0, 1.0, 3.5], [1.0, 3.0, 3.0]) == pytest.approx(3.5 / 3)


def test_rmse() -> None:
    # errors: 3, -4 → sqrt((9 + 16) / 2)
    assert score("rmse", [4.0, 0.0], [1.0, 4.0]) == pytest.approx(math.sqrt(12.5))


def test_r2() -> None:
    # y = 1, 2, 3 (mean 2, total 2); errors 0.5, 0, -0.5 → residual 0.5 → r2 = 1 - 0.5 / 2
    assert score("r2", [1.5, 2.0, 2.5], [1.0, 2.0, 3.0]) == pytest.approx(0.75)


def test_r2_perfect_and_constant_target() -> None:
    assert score("r2", [1.0, 2.0], [1.0, 2.0]) == 1.0
    assert score("r2", [1.0, 2.0], [3.0, 3.0]) == 0.0


def test_unknown_metric() -> None:
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        score("f1", [1.0], [1.0])


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        score("accuracy", ["a", "b"], ["a"])


def _report(metric: str, value: float, threshold: float | None) -> EvalReport:
    return EvalReport("m", 1, metric, value, count=10, failed=0, threshold=threshold)


@pytest.mark.parametrize(
    ("metric", "value", "threshold", "passed"),
    [
        ("accuracy", 0.95, 0.9, True),
        ("accuracy", 0.9, 0.9, True),
        ("accuracy", 0.85, 0.9, False),
        ("r2", 0.5, 0.8, False),
        ("mae", 0.2, 0.3, True),
        ("mae", 0.4, 0.3, False),
        ("rmse", 1.0, 1.0, True),
        ("rmse", 1.5, 1.0, False),
        ("accuracy", 0.1, None, None),
    ],
)
def test_passed(metric: str, value: float, threshold: float | None, passed: bool | None) -> None:
    assert _report(metric, value, threshold).passed is passed


# --- load_examples -----------------------------------------------------------------------------


def test_load_examples(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text(
        '{"instance": [1, 2], "target": 3}\n\n{"instance": {"a": 1}, "target": "x"}\n',
        encoding="utf-8",
    )
    assert load_examples(path) == [([1, 2], 3), ({"a": 1}, "x")]


def test_load_examples_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"eval data .*nope\.jsonl does not exist"):
        load_examples(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("bad", ["not json", '{"instance": 1}', "[1, 2]", "7"])
def test_load_examples_bad_line_names_its_number(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text('{"instance": 1, "target": 1}\n' + bad + "\n", encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_examples(path)
    assert caught.value.message.startswith(f"{path}:2: each line must be")


def test_load_examples_empty(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(SpecError, match="has no examples"):
        load_examples(path)


# --- evaluate() through the serving pipeline ---------------------------------------------------


def _regressor_with_eval(root: Path, threshold: float) -> Path:
    folder = root / "lin"
    onnx_models.linear_regressor(folder / "1" / "model.onnx", features=3)
    (folder / "model.yaml").write_text(
        "task: regression\n"
        "postprocess: [{type: regress}]\n"
        f"eval: {{data: eval.jsonl, metric: mae, threshold: {threshold}}}\n",
        encoding="utf-8",
    )
    weight, bias = onnx_models.linear_regressor_weights(features=3)
    rows = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]]
    lines = []
    for offset, row in zip([0.5, -1.0, 0.0], rows, strict=True):
        target = float((np.asarray(row, dtype=np.float32) @ weight + bias)[0]) + offset
        lines.append(json.dumps({"instance": row, "target": target}))
    lines.append(json.dumps({"instance": [1.0, 2.0], "target": 0.0}))  # wrong width: fails
    (folder / "eval.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_evaluate_scores_the_served_version(tmp_path: Path) -> None:
    report = evaluate(load_model(_regressor_with_eval(tmp_path, threshold=0.6)))
    assert (report.model, report.version, report.metric) == ("lin", 1, "mae")
    assert report.count == 4
    assert report.failed == 1
    assert report.value == pytest.approx(0.5, abs=1e-5)  # (0.5 + 1.0 + 0.0) / 3
    assert report.passed is True


def test_evaluate_below_threshold_fails(tmp_path: Path) -> None:
    assert evaluate(load_model(_regressor_with_eval(tmp_path, threshold=0.1))).passed is False


def test_evaluate_without_eval_section(tmp_path: Path) -> None:
    onnx_models.affine(tmp_path / "plain" / "1" / "model.onnx")
    with pytest.raises(SpecError, match="model 'plain' has no eval: section"):
        evaluate(load_model(tmp_path / "plain"))


def test_seasonal_naive_repeats_the_last_season() -> None:
    history = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(seasonal_naive(history, 5, 2), [4.0, 5.0, 4.0, 5.0, 4.0])


def test_mase_scales_each_error_by_its_history() -> None:
    # History 0,2,4,6: seasonal (m=1) naive steps are all 2, so the scale is 2.
    history = np.array([0.0, 2.0, 4.0, 6.0])
    assert mase([[8.0, 10.0]], [[9.0, 12.0]], [history], 1) == pytest.approx((1 + 2) / 2 / 2)
    # Two examples average their ratios.
    other = np.array([0.0, 1.0, 0.0, 1.0])  # m=1 scale 1
    assert mase([[8.0], [1.0]], [[8.0], [3.0]], [history, other], 1) == pytest.approx(1.0)


def test_history_of_a_keyed_instance() -> None:
    np.testing.assert_array_equal(history_of({"series": [1, 2]}), [1.0, 2.0])
    np.testing.assert_array_equal(history_of([3, 4]), [3.0, 4.0])
