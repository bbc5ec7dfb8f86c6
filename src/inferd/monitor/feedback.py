"""Feedback: the ground truth for a logged prediction, attached later by its request id.

`POST /v1/feedback` takes one entry `{"request_id": ..., "item": 0, "truth": ...}` or many
as `{"feedback": [entry, ...]}`. `item` is the instance's index in its request (default 0).
The truth must have the shape of the model's prediction (a known label for a classifier, a
number for a regressor, ...); one wrong entry fails the whole call (400) so that a batch is
recorded entirely or not at all. Ids the log does not hold are reported back, never dropped
silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from inferd.errors import BadRequestError
from inferd.spec import ModelSpec
from inferd.store import FeedbackEntry

MAX_ENTRIES = 10_000


def parse_feedback(body: Any) -> list[FeedbackEntry]:
    """The entries of a feedback body, each checked for its request id, item and truth."""
    if not isinstance(body, dict):
        raise BadRequestError(
            'the body must be a JSON object: {"request_id": "...", "truth": ...} '
            'or {"feedback": [...]}'
        )
    raw = body.get("feedback", [body])
    if not isinstance(raw, list) or not raw:
        raise BadRequestError('"feedback" must be a non-empty list of entries')
    if len(raw) > MAX_ENTRIES:
        raise BadRequestError(f"send at most {MAX_ENTRIES} feedback entries per call")
    return [_entry(value, index if "feedback" in body else None) for index, value in enumerate(raw)]


def _entry(value: Any, index: int | None) -> FeedbackEntry:
    where = f"feedback[{index}]: " if index is not None else ""
    if not isinstance(value, dict):
        raise BadRequestError(f"{where}each entry must be an object with request_id and truth")
    unknown = set(value) - {"request_id", "item", "truth"}
    if unknown:
        raise BadRequestError(
            f"{where}unknown keys {sorted(unknown)}; an entry has request_id, item and truth"
        )
    request_id = value.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise BadRequestError(f"{where}request_id must be the request id string of a prediction")
    item = value.get("item", 0)
    if not isinstance(item, int) or isinstance(item, bool) or item < 0:
        raise BadRequestError(
            f"{where}item must be the instance's index in its request (0, 1, ...)"
        )
    if "truth" not in value:
        raise BadRequestError(f"{where}truth is missing: give the true label or value")
    return FeedbackEntry(request_id=request_id, item=item, value=value["truth"])


TruthCheck = Callable[[Any], str | None]
"""Returns what is wrong with a truth value for one model, or None when it fits."""


def truth_check(spec: ModelSpec, labels: list[str] | None) -> TruthCheck:
    """How a model's ground truth must look, from its task."""

    def classification(truth: Any) -> str | None:
        if not isinstance(truth, str):
            return f"the truth for {spec.name!r} is a label (text); got {_kind(truth)}"
        if labels is not None and truth not in labels:
            return f"{truth!r} is not a label of {spec.name!r}; its labels are {', '.join(labels)}"
        return None

    def regression(truth: Any) -> str | None:
        if _number(truth) or (
            isinstance(truth, Mapping) and truth and all(_number(v) for v in truth.values())
        ):
            return None
        if isinstance(truth, list) and truth and all(_number(v) for v in truth):
            return None
        return f"the truth for {spec.name!r} is a number (or its named numbers); got {_kind(truth)}"

    def forecasting(truth: Any) -> str | None:
        if isinstance(truth, list) and truth and all(_number(v) for v in truth):
            return None
        return f"the truth for {spec.name!r} is a list of numbers; got {_kind(truth)}"

    def detection(truth: Any) -> str | None:
        fits = isinstance(truth, list) and all(
            isinstance(box, dict)
            and isinstance(box.get("label"), str)
            and isinstance(box.get("box"), list)
            and len(box["box"]) == 4
            and all(_number(v) for v in box["box"])
            for box in truth
        )
        if fits:
            return None
        return (
            f"the truth for {spec.name!r} is a list of boxes "
            '[{"label": "...", "box": [x1, y1, x2, y2]}]; got ' + _kind(truth)
        )

    def anything(truth: Any) -> str | None:
        return None

    checks: dict[str, TruthCheck] = {
        "classification": classification,
        "regression": regression,
        "forecasting": forecasting,
        "detection": detection,
    }
    return checks.get(spec.task, anything)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    return "an object"
