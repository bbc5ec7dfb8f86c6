"""Ground truth checked against the model's task before anything is recorded."""

from __future__ import annotations

from typing import Any

from inferd.monitor.feedback import truth_check
from inferd.spec import parse_spec


def _spec(task: str, postprocess: dict[str, Any]) -> Any:
    return parse_spec({"name": "m", "task": task, "postprocess": [postprocess]})


def test_the_truth_must_look_like_the_models_prediction() -> None:
    classify = truth_check(_spec("classification", {"type": "classify"}), ["cat", "dog"])
    assert classify("cat") is None
    assert "not a label" in (classify("cow") or "")
    assert "is a label (text); got the number 3" in (classify(3) or "")
    regress = truth_check(_spec("regression", {"type": "regress"}), None)
    assert regress(2.5) is None and regress({"price": 3}) is None and regress([1, 2]) is None
    assert "is a number" in (regress("high") or "")
    assert "is a number" in (regress(float("nan")) or "")
    assert "is a number" in (regress(True) or "")
    forecast = truth_check(_spec("forecasting", {"type": "forecast"}), None)
    assert forecast([1.0, 2.0]) is None and "list of numbers" in (forecast(1.0) or "")
    detect = truth_check(_spec("detection", {"type": "detect"}), ["cat"])
    assert detect([{"label": "cat", "box": [0, 0, 1, 1]}]) is None and detect([]) is None
    assert "list of boxes" in (detect([{"label": "cat", "box": [0, 0]}]) or "")
