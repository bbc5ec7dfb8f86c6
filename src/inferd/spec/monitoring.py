"""How model.yaml says a served model is watched: its latency objective (`slo:`), the
window and label counts its live figures need (`monitoring:`), the sensitive attributes its
fairness is measured over (`fairness:`) and the thresholds that raise alerts (`alerts:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from inferd.expression import ExpressionError, parse
from inferd.spec.base import _Strict
from inferd.spec.decide import ActionSpec


class SloSpec(_Strict):
    """The latency objective: `p99_ms` is what 99% of requests must be answered within."""

    p99_ms: float = Field(gt=0)


class MonitoringSpec(_Strict):
    """The live figures' window and how many labels make a figure worth showing."""

    window_s: float = Field(default=86_400.0, gt=0)
    """Seconds of the prediction log the live figures are computed over (default a day)."""
    min_labels: int = Field(default=30, ge=1)
    """Below this many labelled predictions a metric says "too few labels", not a number."""
    buckets: int = Field(default=12, ge=1, le=500)
    """Time buckets of the accuracy-over-time series."""
    bins: int = Field(default=10, ge=2, le=100)
    """Quantile bins of a numeric feature's PSI."""


FairnessMetric = Literal["accuracy", "selection_rate", "recall", "precision", "f1", "mae"]


class FairnessSpec(_Strict):
    """Sensitive attributes (logged wire inputs) to compare the model's groups over."""

    attributes: list[str] = Field(min_length=1)
    metric: FairnessMetric = "accuracy"
    """The per-group metric (mae for a regressor; the others for a classifier)."""
    positive_label: str | None = None
    """The favourable label (e.g. approved) for demographic parity and equalized odds; a
    two-label classifier defaults to its last label."""
    min_group_size: int = Field(default=30, ge=1)
    """Groups with fewer predictions are listed but left out of the differences."""

    @field_validator("attributes")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("fairness.attributes: each attribute once")
        return value


FIGURES = {
    "accuracy": "a classifier's accuracy (live, from feedback labels)",
    "f1": "a classifier's macro F1",
    "mae": "a regressor's mean absolute error",
    "mase": "a forecaster's mean absolute scaled error",
    "map": "a detector's mean average precision",
    "labels": "labelled predictions in the window",
    "predictions": "logged predictions in the window",
    "slo_attainment": "share of logged predictions within slo.p99_ms",
    "latency_p99_ms": "99th percentile of the request latency, ms",
    "cost_per_1000": "cost of 1,000 predictions, in the server's currency",
    "energy_j_per_1000": "joules of 1,000 predictions",
    "demographic_parity_difference": "the largest, over the sensitive attributes",
    "equalized_odds_difference": "the largest, over the sensitive attributes",
    "drift_psi_max": "the largest PSI over the input features",
    "drift_ks_max": "the largest KS statistic over the numeric input features",
}
"""The live figures an alert's `when` may read; one it cannot know yet (too few labels, no
fairness section) is null, and a rule over null does not fire."""


class AlertSpec(_Strict):
    """A threshold on the live figures: when `when` turns true, the actions are taken (once
    per breach, through the same durable outbox as decide rules' actions)."""

    name: str = Field(min_length=1, max_length=200)
    when: str
    """An expression over the figures, e.g. `accuracy < 0.9 or slo_attainment < 0.99`."""
    description: str = ""
    actions: list[ActionSpec] = Field(default_factory=list)

    @field_validator("when")
    @classmethod
    def _reads_figures(cls, when: str) -> str:
        try:
            expression = parse(when)
        except ExpressionError as error:
            raise ValueError(f"alert rule {when!r}: {error}") from None
        unknown = sorted(
            ".".join(path) for path in expression.names() if ".".join(path) not in FIGURES
        )
        if unknown:
            raise ValueError(
                f"alert rule {when!r} reads {', '.join(unknown)}; the figures are "
                f"{', '.join(FIGURES)}"
            )
        return when


__all__ = ["FIGURES", "AlertSpec", "FairnessMetric", "FairnessSpec", "MonitoringSpec", "SloSpec"]
