"""Where a cascade model (model.yaml `cascade: {first, then, when}`) plugs into tune: its
search dimension is the confidence threshold in `when`, each with the accuracy the eval set
gives it. The cascade serving and `inferd.optimize.cascade` (per-threshold accuracy and share
sent on) are wired here; until then a model without `cascade:` has the one threshold None."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferd.repository import ModelEntry
from inferd.spec import ModelSpec


@dataclass(frozen=True)
class ThresholdPoint:
    threshold: float | None
    metric_value: float | None
    """The cascade's metric on the eval set at this threshold (None: not a cascade)."""


def is_cascade(spec: ModelSpec) -> bool:
    return getattr(spec, "cascade", None) is not None


def threshold_points(entry: ModelEntry) -> list[ThresholdPoint]:
    """The thresholds to try and each one's metric; [None] for a model that is no cascade."""
    if entry.spec is None or not is_cascade(entry.spec):
        return [ThresholdPoint(None, None)]
    from inferd.errors import SpecError

    raise SpecError(  # wired once cascade serving (inferd.optimize.cascade) is merged
        f"model {entry.name!r} is a cascade; tuning its threshold needs inferd.optimize.cascade"
    )


def set_threshold(data: Any, threshold: float) -> None:
    """model.yaml data with the cascade's `when` set to the threshold (for staging, --apply)."""
    cascade = data.get("cascade")
    if cascade is not None:
        cascade["when"] = f"confidence < {threshold:g}"
