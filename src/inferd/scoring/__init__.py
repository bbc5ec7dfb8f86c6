"""The task metrics, shared by offline evaluation (`optimize/evaluate.py`) and the live
monitor (`monitor/accuracy.py`): accuracy and the regression errors (`score`), MASE for
forecasts, and mAP for detections (`average_precision.py`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from inferd.errors import SpecError


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


__all__ = ["history_of", "mase", "score", "seasonal_naive"]
