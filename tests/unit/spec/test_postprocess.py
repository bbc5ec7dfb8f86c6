"""Postprocess stages: scaling that cannot fit, top-k and detection thresholds."""

from __future__ import annotations

from inferd.spec import parse_spec
from tests.unit.spec.documents import error


def test_regress_scaling_that_cannot_fit_its_names_is_caught_at_load() -> None:
    # Two named values can be scaled by one mean or two, never three: that is a typo in
    # model.yaml, and the spec promises to catch those when the file is read.
    message = error(
        {
            "name": "m",
            "task": "regression",
            "postprocess": [{"type": "regress", "names": ["a", "b"], "mean": [1.0, 2.0, 3.0]}],
        }
    )
    assert "postprocess.0" in message
    assert "mean" in message


def test_top_k_must_be_positive() -> None:
    message = error(
        {"name": "m", "task": "classification", "postprocess": [{"type": "classify", "top_k": 0}]}
    )
    assert "postprocess.0" in message and "top_k" in message


def test_detection_needs_a_detect_stage_with_sane_thresholds() -> None:
    spec = {"name": "m", "task": "detection", "postprocess": [{"type": "detect"}]}
    assert parse_spec(spec).postprocess[0].type == "detect"
    bad = {**spec, "postprocess": [{"type": "detect", "iou_threshold": 0}]}
    assert "postprocess.0.iou_threshold" in error(bad)
