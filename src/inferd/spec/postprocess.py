"""The `postprocess:` stages of model.yaml: how model outputs become a prediction (a label,
named values, a forecast, detections)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from inferd.spec.base import _one_per, _Strict


class ClassifyStage(_Strict):
    """Scores → label, score and top-k with label names."""

    type: Literal["classify"]
    output: str | None = None
    """The model output holding logits or probabilities (default: the first output)."""
    softmax: bool | Literal["auto"] = "auto"
    """"auto" applies softmax unless the scores already look like probabilities."""
    top_k: int = Field(default=5, ge=1)


class RegressStage(_Strict):
    """Raw outputs → named values in the target's own units (inverse scaling)."""

    type: Literal["regress"]
    output: str | None = None
    names: list[str] | None = None
    """Names for the values; one value and no names gives {"value": x}."""
    mean: list[float] | None = None
    std: list[float] | None = None

    @field_validator("mean", "std")
    @classmethod
    def _per_name(cls, values: list[float] | None, info: ValidationInfo) -> list[float] | None:
        return _one_per(values, info, "names", "name")


class ForecastStage(_Strict):
    """Raw outputs → the forecast horizon in the series' own units."""

    type: Literal["forecast"]
    output: str | None = None
    mean: float = 0.0
    std: float = 1.0
    min_value: float | None = None
    """Clip below this (e.g. 0 for counts); None leaves values as they are."""
    max_value: float | None = None


class DetectStage(_Strict):
    """Candidate boxes and class scores → thresholded, NMS-filtered detections in the
    original image's pixel coordinates."""

    type: Literal["detect"]
    boxes: str = "boxes"
    """Model output with [candidates, 4] boxes per image, in the model input's pixels."""
    scores: str = "scores"
    """Model output with [candidates, classes] scores per image (probabilities)."""
    box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy"
    normalized: bool = False
    """Boxes are fractions (0..1) of the model input's width and height, not pixels."""
    image_input: str | None = None
    """The wire image whose resize/letterbox is undone (default: the only image input)."""
    score_threshold: float = Field(default=0.25, ge=0, le=1)
    iou_threshold: float = Field(default=0.5, gt=0, le=1)
    """Non-maximum suppression: of two boxes of one class overlapping more, the lower goes."""
    max_detections: int = Field(default=100, ge=1)


PostprocessStage = Annotated[
    ClassifyStage | RegressStage | ForecastStage | DetectStage, Field(discriminator="type")
]
