"""Feedback bodies: one entry or many, each checked before anything is recorded."""

from __future__ import annotations

from typing import Any

import pytest

from inferd.api.v1 import MAX_ENTRIES, parse_feedback
from inferd.errors import BadRequestError
from inferd.monitor.feedback import truth_check
from inferd.spec import parse_spec
from inferd.store import FeedbackEntry


def test_one_entry_and_a_bulk_body() -> None:
    assert parse_feedback({"request_id": "a", "truth": "cat"}) == [FeedbackEntry("a", 0, "cat")]
    bulk = parse_feedback(
        {
            "feedback": [
                {"request_id": "a", "item": 2, "truth": 1.5},
                {"request_id": "b", "truth": None},
            ]
        }
    )
    assert bulk == [FeedbackEntry("a", 2, 1.5), FeedbackEntry("b", 0, None)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a JSON object"),
        ({"feedback": []}, "non-empty list"),
        ({"feedback": "x"}, "non-empty list"),
        ({"truth": 1}, "request_id must be"),
        ({"request_id": "", "truth": 1}, "request_id must be"),
        ({"request_id": "a"}, "truth is missing"),
        ({"request_id": "a", "truth": 1, "item": -1}, "item must be"),
        ({"request_id": "a", "truth": 1, "item": True}, "item must be"),
        ({"request_id": "a", "truth": 1, "label": "x"}, "unknown keys ['label']"),
        ({"feedback": [{"request_id": "a", "truth": 1}, 3]}, "feedback[1]: each entry"),
        ({"feedback": [{"request_id": "a", "truth": 1}] * (MAX_ENTRIES + 1)}, "at most"),
    ],
)
def test_malformed_feedback_is_a_400_that_says_what_to_fix(body: Any, message: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_feedback(body)
    assert message in caught.value.message


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
