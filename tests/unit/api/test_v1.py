"""`/v1/feedback` bodies: one entry or many, each checked before anything is recorded."""

from __future__ import annotations

from typing import Any

import pytest

from inferd.api.v1 import MAX_ENTRIES, parse_feedback
from inferd.errors import BadRequestError
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
