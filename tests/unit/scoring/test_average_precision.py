"""Mean average precision on hand-made cases whose answers can be worked out on paper."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from inferd.scoring.average_precision import average_precision, mean_average_precision

A = [0.0, 0.0, 10.0, 10.0]
B = [20.0, 20.0, 30.0, 30.0]
C = [40.0, 0.0, 50.0, 10.0]
D = [0.0, 40.0, 10.0, 50.0]


def _box(label: str, box: list[float], score: float | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"label": label, "box": box}
    if score is not None:
        found["score"] = score
    return found


def test_perfect_detections_score_one() -> None:
    truths = [[_box("1", A), _box("2", B)], [_box("1", C)]]
    found = [[_box("1", A, 0.9), _box("2", B, 0.8)], [_box("1", C, 0.7)]]
    assert mean_average_precision(found, truths) == (1.0, {"1": 1.0, "2": 1.0})


def test_a_false_alarm_ranked_above_the_hit_halves_precision() -> None:
    truths = [[_box("1", A)]]
    assert mean_average_precision([[_box("1", B, 0.9), _box("1", A, 0.8)]], truths)[0] == 0.5
    assert mean_average_precision([[_box("1", A, 0.9), _box("1", B, 0.8)]], truths)[0] == 1.0


def test_a_missed_box_caps_recall() -> None:
    truths = [[_box("1", A), _box("1", B)]]
    assert mean_average_precision([[_box("1", A, 0.9)]], truths)[0] == 0.5


def test_a_duplicate_detection_is_a_false_alarm() -> None:
    """Only one detection may claim a true box; the better-scored duplicate comes first."""
    truths = [[_box("1", A), _box("1", B)]]
    found = [[_box("1", A, 0.9), _box("1", A, 0.8), _box("1", B, 0.7)]]
    # hits 1, 0, 1 → precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    assert mean_average_precision(found, truths)[0] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_the_iou_threshold_decides_a_hit() -> None:
    truths = [[_box("1", A)]]
    shifted = [[_box("1", [5.0, 0.0, 15.0, 10.0], 0.9)]]  # IoU 1/3
    assert mean_average_precision(shifted, truths, iou=0.5)[0] == 0.0
    assert mean_average_precision(shifted, truths, iou=0.3)[0] == 1.0


def test_a_wrong_label_does_not_match() -> None:
    truths = [[_box("1", A)]]
    mean, per_class = mean_average_precision([[_box("2", A, 0.9)]], truths)
    assert (mean, per_class) == (0.0, {"1": 0.0})


def test_detections_only_match_boxes_in_their_own_image() -> None:
    truths = [[_box("1", A)], []]
    assert mean_average_precision([[], [_box("1", A, 0.9)]], truths)[0] == 0.0


def test_map_is_the_mean_over_classes_with_true_boxes() -> None:
    truths = [[_box("1", A), _box("2", B)]]
    found = [[_box("1", A, 0.9), _box("2", C, 0.8), _box("3", D, 0.7)]]
    assert mean_average_precision(found, truths) == (0.5, {"1": 1.0, "2": 0.0})


def test_interpolated_area_on_a_worked_example() -> None:
    """Ranked hits 1 0 1 0 1 over 4 true boxes: recall steps of 1/4 at precisions 1, 2/3, 3/5
    (the interpolated envelope), so AP = (1 + 2/3 + 3/5) / 4."""
    hits = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    assert average_precision(hits, 4) == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)


def test_bad_boxes_and_no_truths_are_reported() -> None:
    with pytest.raises(ValueError, match="x1, y1, x2, y2"):
        mean_average_precision([[{"label": "1", "box": [1, 2]}]], [[_box("1", A)]])
    with pytest.raises(ValueError, match="at least one true box"):
        mean_average_precision([[]], [[]])
    with pytest.raises(ValueError, match="2 detection lists for 1 images"):
        mean_average_precision([[], []], [[]])
