"""How model.yaml says a model's quality is watched: `eval:` (held-out data, the metric and
the threshold it must reach) and `prediction_log:` (what the store keeps of predictions)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from inferd.spec.base import ModelFile, _Strict


class EvalSpec(_Strict):
    data: ModelFile
    """A JSON-lines file, relative to the model folder: {"instance": ..., "target": ...}."""
    metric: Literal["accuracy", "r2", "mae", "rmse", "mase", "map"]
    threshold: float | None = None
    """The value the metric must reach (at least; at most for mae/rmse/mase)."""
    season: int = Field(default=1, ge=1)
    """For mase: the season length m of the naive forecast that scales the error."""
    iou: float = Field(default=0.5, gt=0, le=1)
    """For map: the overlap a detection needs with a true box to count as a hit."""
    min_recall: dict[str, Annotated[float, Field(ge=0, le=1)]] | None = None
    """For accuracy: class label → the recall that class must reach (e.g. {malignant: 0.93});
    the eval passes only when the threshold and every listed recall are met."""

    @field_validator("min_recall", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        """YAML reads `{3: 0.9}` with an int key; class labels are text ("3")."""
        if isinstance(value, dict):
            return {
                str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v
                for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _recall_needs_classes(self) -> EvalSpec:
        if self.min_recall is not None and self.metric != "accuracy":
            raise ValueError(
                f'min_recall applies to metric "accuracy" (a classifier), not "{self.metric}"'
            )
        if self.min_recall is not None and not self.min_recall:
            raise ValueError("min_recall must name at least one class, or be left out")
        return self


class PredictionLogSpec(_Strict):
    """Which predictions go to the store's prediction log, and what of them is kept."""

    sample_rate: float = Field(default=1.0, ge=0, le=1)
    """Fraction of predictions logged (each item drawn independently)."""
    inputs: Literal["all", "none"] | list[str] = "all"
    """Wire inputs kept with each logged prediction (binary inputs are never kept)."""
