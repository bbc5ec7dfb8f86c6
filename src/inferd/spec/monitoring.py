"""How model.yaml says a served model is watched: its latency objective (`slo:`), the
window and label counts its live figures need (`monitoring:`), the sensitive attributes its
fairness is measured over (`fairness:`) and the thresholds that raise alerts (`alerts:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

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


class AlertSpec(_Strict):
    """A threshold on the live figures: when `when` turns true, the actions are taken (once
    per breach, through the same durable outbox as decide rules' actions)."""

    name: str = Field(min_length=1, max_length=200)
    when: str
    """An expression over the figures, e.g. `accuracy < 0.9 or slo_attainment < 0.99`."""
    description: str = ""
    actions: list[ActionSpec] = Field(default_factory=list)


__all__ = ["AlertSpec", "FairnessMetric", "FairnessSpec", "MonitoringSpec", "SloSpec"]
