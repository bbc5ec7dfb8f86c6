"""Object-detection postprocessing: candidate boxes → the objects in the original image.

A single-stage detector scores every candidate box for every class. This stage keeps the
(box, class) pairs that reach the score threshold, removes duplicates with class-wise
non-maximum suppression, keeps the best `max_detections`, and maps the boxes from the model
input's pixels back to the image the client sent (undoing the image stage's resize or
letterbox), so a box can be drawn on that image as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inferd.errors import ModelError
from inferd.spec import DetectStage, TensorSpec
from inferd.stages import ImageGeometry, Postprocess, Prediction


def to_xyxy(boxes: np.ndarray, box_format: str) -> np.ndarray:
    """[n, 4] boxes in xyxy, xywh (corner + size) or cxcywh (centre + size) → x1, y1, x2, y2."""
    if box_format == "xyxy":
        return boxes
    if box_format == "xywh":
        return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    half = boxes[:, 2:] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one xyxy box with each of [n, 4] others."""
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    intersection = width * height
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = np.clip(others[:, 2] - others[:, 0], 0, None) * np.clip(
        others[:, 3] - others[:, 1], 0, None
    )
    union = area + areas - intersection
    overlap = np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
    return np.asarray(overlap)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept, best first: each box suppresses the lower-scored boxes that
    overlap it by more than `iou_threshold`."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size:
        best, order = order[0], order[1:]
        kept.append(int(best))
        order = order[box_iou(boxes[best], boxes[order]) <= iou_threshold]
    return np.asarray(kept, dtype=np.int64)


def detect(
    boxes: np.ndarray, scores: np.ndarray, stage: DetectStage
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model-space xyxy boxes, scores and class ids of the detections, best first."""
    candidate, klass = np.nonzero(scores >= stage.score_threshold)
    if candidate.size == 0:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64)
    picked_boxes, picked_scores = boxes[candidate], scores[candidate, klass]
    kept = []
    for class_id in np.unique(klass):
        members = np.flatnonzero(klass == class_id)
        survivors = non_max_suppression(
            picked_boxes[members], picked_scores[members], stage.iou_threshold
        )
        kept.append(members[survivors])
    chosen = np.concatenate(kept)
    chosen = chosen[np.argsort(-picked_scores[chosen], kind="stable")][: stage.max_detections]
    return picked_boxes[chosen], picked_scores[chosen], klass[chosen]


def build(
    stage: DetectStage,
    labels: list[str] | None,
    image_input: str | None,
    input_size: tuple[int, int],
) -> Postprocess:
    """A postprocess function over the model's `boxes` and `scores` outputs.

    `image_input` is the wire image whose geometry the boxes are mapped back through (None:
    boxes stay in model pixels); `input_size` is the model input's [width, height], which
    scales normalized boxes.
    """
    width, height = input_size

    def run(outputs: dict[str, np.ndarray], context: dict[str, Any]) -> Prediction:
        boxes = np.asarray(outputs[stage.boxes], dtype=np.float64)
        scores = np.asarray(outputs[stage.scores], dtype=np.float64)
        if scores.ndim == 1:
            scores = scores[:, np.newaxis]
        if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape[0] != boxes.shape[0]:
            raise ModelError(
                f"model outputs {stage.boxes!r} {list(boxes.shape)} and {stage.scores!r} "
                f"{list(scores.shape)} must be [candidates, 4] and [candidates, classes]"
            )
        if labels is not None and scores.shape[1] != len(labels):
            raise ModelError(
                f"model output {stage.scores!r} scores {scores.shape[1]} classes but "
                f"{len(labels)} labels are configured; fix the labels file or the model"
            )
        boxes = to_xyxy(boxes, stage.box_format)
        if stage.normalized:
            boxes = boxes * np.array([width, height, width, height])
        kept_boxes, kept_scores, classes = detect(boxes, scores, stage)
        geometry = context.get(image_input) if image_input is not None else None
        if isinstance(geometry, ImageGeometry):
            kept_boxes = geometry.to_original(kept_boxes)
        names = [labels[c] if labels is not None else str(c) for c in classes]
        detections = [
            {"label": name, "score": float(score), "box": [float(v) for v in box]}
            for name, score, box in zip(names, kept_scores, kept_boxes, strict=True)
        ]
        return Prediction(
            fields={"detections": detections},
            tensors={
                "boxes": kept_boxes.astype(np.float32).reshape(-1, 4),
                "scores": kept_scores.astype(np.float32),
                "labels": np.array([n.encode() for n in names], dtype=np.object_),
                "num_detections": np.array([len(names)], dtype=np.int64),
            },
        )

    return Postprocess(
        run=run,
        outputs=[
            TensorSpec(name="boxes", datatype="FP32", shape=[-1, 4]),
            TensorSpec(name="scores", datatype="FP32", shape=[-1]),
            TensorSpec(name="labels", datatype="BYTES", shape=[-1]),
            TensorSpec(name="num_detections", datatype="INT64", shape=[1]),
        ],
        ragged={"boxes": 0.0, "scores": 0.0, "labels": b""},
    )
