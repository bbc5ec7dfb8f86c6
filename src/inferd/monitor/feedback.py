"""Feedback: the ground truth for a logged prediction, attached later by its request id.

The truth must have the shape of the model's prediction (a known label for a classifier, a
number for a regressor, ...); one wrong entry fails the whole call (400), and one the log
does not hold too (404), so that a batch is recorded entirely or not at all. (The wire
form, `POST /v1/feedback`, is parsed in `inferd.api.v1`.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from inferd.spec import ModelSpec

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
