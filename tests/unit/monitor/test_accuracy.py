"""The task metric, live: from logged predictions and their feedback."""

from __future__ import annotations

import pytest

from inferd.monitor import accuracy
from inferd.spec import parse_spec
from tests.unit.monitor.rows import row

CLASSIFIER = parse_spec(
    {
        "name": "m",
        "task": "classification",
        "postprocess": [{"type": "classify", "output": "y"}],
        "prediction_log": {},
    }
)
REGRESSOR = parse_spec({"name": "m", "task": "regression", "postprocess": [{"type": "regress"}]})


def test_accuracy_with_its_wilson_interval_and_f1() -> None:
    rows = [row({"label": "a"}, "a") for _ in range(80)] + [
        row({"label": "a"}, "b") for _ in range(20)
    ]
    rows += [row({"label": "b"}) for _ in range(50)]  # unlabelled: not counted
    figure = accuracy.measure(CLASSIFIER, rows, min_labels=30)
    assert figure["status"] == "ok" and figure["n"] == 100
    assert figure["value"] == pytest.approx(0.8)
    low, high = figure["ci"]
    assert 0.70 < low < 0.8 < high < 0.88
    # class a: precision 0.8, recall 1 → F1 0.889; class b: F1 0 → macro 0.444
    assert figure["f1"] == pytest.approx((2 * 0.8 / 1.8) / 2)


def test_too_few_labels_is_said_not_numbered() -> None:
    rows = [row({"label": "a"}, "a") for _ in range(29)]
    figure = accuracy.measure(CLASSIFIER, rows, min_labels=30)
    assert figure["status"] == accuracy.TOO_FEW and figure["value"] is None and figure["n"] == 29


def test_regression_mae_with_a_bootstrap_interval() -> None:
    rows = [row({"value": float(i)}, float(i) + (1.0 if i % 2 else -3.0)) for i in range(60)]
    figure = accuracy.measure(REGRESSOR, rows, min_labels=30)
    assert figure["metric"] == "mae" and figure["value"] == pytest.approx(2.0)
    low, high = figure["ci"]
    assert low <= 2.0 <= high


def test_labels_of_the_wrong_shape_give_a_status_not_a_crash() -> None:
    rows = [row({"value": 1.0}, "not a number") for _ in range(40)]
    figure = accuracy.measure(REGRESSOR, rows, min_labels=30)
    assert figure["value"] is None and "do not fit" in figure["status"]


def test_over_time_buckets_follow_the_prediction_times() -> None:
    early = [row({"label": "a"}, "a", created_at=10.0 + i * 0.01) for i in range(40)]
    late = [row({"label": "a"}, "b", created_at=60.0 + i * 0.01) for i in range(40)]
    series = accuracy.over_time(CLASSIFIER, early + late, 0.0, 100.0, 2, 30)
    assert [(b["start"], b["end"]) for b in series] == [(0.0, 50.0), (50.0, 100.0)]
    assert [b["value"] for b in series] == [1.0, 0.0]


FORECASTER = parse_spec(
    {
        "name": "m",
        "task": "forecasting",
        "postprocess": [{"type": "forecast"}],
        "eval": {"data": "eval.jsonl", "metric": "mase", "season": 1},
    }
)
DETECTOR = parse_spec(
    {
        "name": "m",
        "task": "detection",
        "postprocess": [{"type": "detect", "boxes": "b", "scores": "s"}],
    }
)


def test_forecasts_are_scored_by_mase_against_their_logged_history() -> None:
    history = [1.0, 2.0, 3.0, 4.0]  # the naive forecast's mean error is 1 a step
    rows = [row({"forecast": [5.0, 6.0]}, [5.5, 6.5], {"series": history}) for _ in range(30)]
    figure = accuracy.measure(FORECASTER, rows, min_labels=30)
    assert figure["metric"] == "mase" and figure["value"] == pytest.approx(0.5)


def test_detections_are_scored_by_map() -> None:
    box = {"label": "2", "box": [0.0, 0.0, 10.0, 10.0]}
    found = {"detections": [{**box, "score": 0.9}]}
    rows = [row(found, [box]) for _ in range(20)] + [
        row({"detections": []}, [box]) for _ in range(20)
    ]
    figure = accuracy.measure(DETECTOR, rows, min_labels=30)
    assert figure["metric"] == "map" and figure["value"] == pytest.approx(0.5)
    assert figure["ci"] is not None
