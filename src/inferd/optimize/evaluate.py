"""Evaluate a model on its labelled held-out data, through the same pipeline that serves it.

The data file (model.yaml `eval.data`) is JSON lines, one `{"instance": ..., "target": ...}`
per example, where the instance is exactly what a V1 client would send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inferd.errors import InferdError, SpecError
from inferd.optimize.average_precision import mean_average_precision
from inferd.repository import ModelEntry
from inferd.spec import EvalSpec

_LOWER_IS_BETTER = {"mae", "rmse", "mase"}


@dataclass
class EvalReport:
    model: str
    version: int
    metric: str
    value: float
    count: int
    failed: int
    threshold: float | None
    baseline: float | None = None
    """The same metric for a reference forecaster (mase: the seasonal-naive forecast)."""
    per_class: dict[str, float] | None = None
    """map: each class's average precision."""

    @property
    def passed(self) -> bool | None:
        """Whether the metric reaches the threshold (None when the spec sets none)."""
        if self.threshold is None:
            return None
        if self.metric in _LOWER_IS_BETTER:
            return self.value <= self.threshold
        return self.value >= self.threshold


def load_examples(path: Path) -> list[tuple[Any, Any]]:
    if not path.exists():
        raise SpecError(f"eval data {path} does not exist")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            examples.append((record["instance"], record["target"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SpecError(
                f'{path}:{number}: each line must be {{"instance": ..., "target": ...}}'
            ) from None
    if not examples:
        raise SpecError(f"eval data {path} has no examples")
    return examples


def _prediction_value(fields: dict[str, Any], metric: str) -> Any:
    if metric == "accuracy":
        return fields.get("label")
    if metric == "mase":
        return fields.get("forecast")
    if metric == "map":
        return fields.get("detections")
    if "value" in fields:
        return fields["value"]
    numbers = [v for v in fields.values() if isinstance(v, int | float)]
    return numbers[0] if numbers else None


def score(metric: str, predicted: list[Any], targets: list[Any]) -> float:
    """The metric over paired predictions and targets."""
    if metric == "accuracy":
        hits = sum(str(p) == str(t) for p, t in zip(predicted, targets, strict=True))
        return hits / len(targets)
    y_pred = np.asarray(predicted, dtype=np.float64)
    y_true = np.asarray(targets, dtype=np.float64)
    error = y_pred - y_true
    if metric == "mae":
        return float(np.abs(error).mean())
    if metric == "rmse":
        return float(np.sqrt((error**2).mean()))
    if metric == "r2":
        total = float(((y_true - y_true.mean()) ** 2).sum())
        return 1.0 - float((error**2).sum()) / total if total > 0 else 0.0
    raise ValueError(f"unknown metric {metric!r}")


def history_of(instance: Any) -> np.ndarray:
    """The series a forecasting instance carries: a bare list or {"<input>": [...]}."""
    if isinstance(instance, dict) and len(instance) == 1:
        instance = next(iter(instance.values()))
    return np.asarray(instance, dtype=np.float64).reshape(-1)


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last season: the forecast every forecaster should beat."""
    last = history[-season:]
    return np.asarray([last[j % len(last)] for j in range(horizon)], dtype=np.float64)


def mase(
    forecasts: list[Any], targets: list[Any], histories: list[np.ndarray], season: int
) -> float:
    """Mean absolute scaled error: each example's MAE over its history's seasonal-naive MAE."""
    ratios = []
    for forecast, target, history in zip(forecasts, targets, histories, strict=True):
        if history.size <= season:
            raise SpecError(f"mase needs histories longer than the season ({season})")
        scale = float(np.abs(history[season:] - history[:-season]).mean())
        error = np.abs(np.asarray(forecast, np.float64) - np.asarray(target, np.float64)).mean()
        ratios.append(float(error) / scale if scale > 0 else float("inf"))
    return float(np.mean(ratios))


def evaluate(entry: ModelEntry, eval_spec: EvalSpec | None = None) -> EvalReport:
    """Run the served (latest) version over the eval data and score it."""
    spec = eval_spec or (entry.spec.eval if entry.spec is not None else None)
    if spec is None:
        raise SpecError(f"model {entry.name!r} has no eval: section in its model.yaml")
    model = entry.latest
    if model is None:
        raise SpecError(f"model {entry.name!r} did not load: {'; '.join(entry.errors)}")
    examples = load_examples(entry.path / spec.data)
    outcomes = model.predictive.predict_instances([instance for instance, _ in examples])
    predicted: list[Any] = []
    targets: list[Any] = []
    instances: list[Any] = []
    failed = 0
    for outcome, (instance, target) in zip(outcomes, examples, strict=True):
        if isinstance(outcome, InferdError):
            failed += 1
            if spec.metric == "map":  # an image that failed found nothing
                predicted.append([])
                targets.append(target)
            continue
        predicted.append(_prediction_value(outcome.fields, spec.metric))
        targets.append(target)
        instances.append(instance)
    baseline = None
    per_class = None
    if not predicted:
        value = float("nan")
    elif spec.metric == "map":
        try:
            value, per_class = mean_average_precision(predicted, targets, spec.iou)
        except ValueError as error:
            raise SpecError(f"eval data {spec.data}: {error}") from None
    elif spec.metric == "mase":
        histories = [history_of(instance) for instance in instances]
        value = mase(predicted, targets, histories, spec.season)
        naive = [
            seasonal_naive(h, len(t), spec.season) for h, t in zip(histories, targets, strict=True)
        ]
        baseline = mase(naive, targets, histories, spec.season)
    else:
        value = score(spec.metric, predicted, targets)
    if spec.metric == "accuracy" and failed:
        value = value * len(predicted) / len(examples)  # a failed example is a wrong one
    return EvalReport(
        model=entry.name,
        version=model.version,
        metric=spec.metric,
        value=value,
        count=len(examples),
        failed=failed,
        threshold=spec.threshold,
        baseline=baseline,
        per_class=per_class,
    )
