"""A model's task metric, live: logged predictions joined with the labels `/v1/feedback`
attached to them, over the monitoring window and over time.

Classification gives accuracy (Wilson interval) and macro F1; regression MAE; forecasting
MASE (the history is the logged input); detection mAP — the others with a bootstrap
interval. Below `monitoring.min_labels` labelled predictions the figure is "too few labels",
never a number that looks meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from inferd.monitor.intervals import bootstrap, wilson
from inferd.scoring import history_of, mase
from inferd.scoring.average_precision import mean_average_precision
from inferd.spec import ModelSpec
from inferd.store import LoggedRow

TOO_FEW = "too few labels"
METRIC_OF_TASK = {
    "classification": "accuracy",
    "regression": "mae",
    "forecasting": "mase",
    "detection": "map",
}


def metric_of(spec: ModelSpec) -> str | None:
    """The live metric of a model's task (None: a task with no truth to compare)."""
    return METRIC_OF_TASK.get(spec.task)


def labelled(rows: Sequence[LoggedRow]) -> list[LoggedRow]:
    return [row for row in rows if row.feedback is not None]


def predicted_value(row: LoggedRow) -> Any:
    """What a prediction claims, in the form its truth is given."""
    fields = row.prediction
    if "label" in fields:
        return fields["label"]
    if "forecast" in fields:
        return fields["forecast"]
    if "detections" in fields:
        return fields["detections"]
    if "value" in fields:
        return fields["value"]
    return fields


def _regression_error(row: LoggedRow) -> float | None:
    """The absolute error of one regression (the mean over named or listed values)."""
    truth, fields = row.feedback, row.prediction
    if isinstance(truth, int | float):
        guess = fields.get("value")
        if guess is None and "values" in fields and len(fields["values"]) == 1:
            guess = fields["values"][0]
        return abs(float(guess) - float(truth)) if isinstance(guess, int | float) else None
    if isinstance(truth, dict):
        pairs = [(fields.get(k), v) for k, v in truth.items()]
    elif isinstance(truth, list):
        pairs = list(zip(fields.get("values", []), truth, strict=False))
    else:
        return None
    errors = [abs(float(p) - float(t)) for p, t in pairs if isinstance(p, int | float)]
    return float(np.mean(errors)) if errors else None


def _mase(rows: Sequence[LoggedRow], season: int) -> float | None:
    usable = [r for r in rows if r.inputs]
    if not usable:
        return None
    try:
        return mase(
            [r.prediction.get("forecast") for r in usable],
            [r.feedback for r in usable],
            [history_of(r.inputs) for r in usable],
            season,
        )
    except Exception:  # a label of another shape than the forecast: no figure, never a crash
        return None


def _map(rows: Sequence[LoggedRow], iou: float) -> float | None:
    try:
        value, _ = mean_average_precision(
            [r.prediction.get("detections", []) for r in rows],
            [r.feedback or [] for r in rows],
            iou,
        )
    except ValueError:
        return None
    return value


def macro_f1(rows: Sequence[LoggedRow]) -> float | None:
    """The mean over classes (seen in truth or prediction) of each one's F1."""
    pairs = [(str(r.prediction.get("label")), str(r.feedback)) for r in rows]
    classes = sorted({c for pair in pairs for c in pair})
    if not classes:
        return None
    scores = []
    for label in classes:
        hits = sum(p == label and t == label for p, t in pairs)
        predicted = sum(p == label for p, _ in pairs)
        actual = sum(t == label for _, t in pairs)
        scores.append(2 * hits / (predicted + actual) if predicted + actual else 0.0)
    return float(np.mean(scores))


def measure(spec: ModelSpec, rows: Sequence[LoggedRow], min_labels: int) -> dict[str, Any]:
    """The task metric over the labelled rows: value, count, 95% interval and status."""
    metric = metric_of(spec)
    rows = labelled(rows)
    figure: dict[str, Any] = {
        "metric": metric,
        "value": None,
        "n": len(rows),
        "ci": None,
        "status": TOO_FEW,
        "min_labels": min_labels,
    }
    if metric is None:
        figure["status"] = f'task "{spec.task}" has no labels to compare'
        return figure
    if len(rows) < min_labels:
        return figure
    value: float | None
    ci: tuple[float, float] | None
    if metric == "accuracy":
        hits = sum(str(r.prediction.get("label")) == str(r.feedback) for r in rows)
        value, ci = hits / len(rows), wilson(hits, len(rows))
        figure["f1"] = macro_f1(rows)
    elif metric == "mae":
        errors = [e for e in map(_regression_error, rows) if e is not None]
        value = float(np.mean(errors)) if errors else None
        ci = bootstrap(errors, lambda sample: float(np.mean(sample)))
    elif metric == "mase":
        season = spec.eval.season if spec.eval is not None else 1
        value = _mase(rows, season)
        ci = bootstrap(rows, lambda sample: _mase(sample, season), resamples=100)
    else:
        iou = spec.eval.iou if spec.eval is not None else 0.5
        value = _map(rows, iou)
        ci = bootstrap(rows, lambda sample: _map(sample, iou), resamples=50)
    if value is None or not math.isfinite(value):
        figure["status"] = "the labels do not fit the predictions (see the feedback format)"
        return figure
    figure.update(value=value, ci=list(ci) if ci else None, status="ok")
    return figure


def over_time(
    spec: ModelSpec,
    rows: Sequence[LoggedRow],
    since: float,
    until: float,
    buckets: int,
    min_labels: int,
) -> list[dict[str, Any]]:
    """The metric per time bucket of the window (by prediction time)."""
    width = (until - since) / buckets
    series = []
    for index in range(buckets):
        start = since + index * width
        end = until if index == buckets - 1 else start + width
        inside = [
            r
            for r in rows
            if start <= r.created_at < end or (end == until and r.created_at == until)
        ]
        figure = measure(spec, inside, min_labels)
        series.append(
            {
                "start": start,
                "end": end,
                "value": figure["value"],
                "n": figure["n"],
                "ci": figure["ci"],
                "status": figure["status"],
            }
        )
    return series


__all__ = ["METRIC_OF_TASK", "TOO_FEW", "labelled", "measure", "metric_of", "over_time"]
