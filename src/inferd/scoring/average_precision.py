"""Mean average precision (mAP) of object detections, the standard score of a detector.

For each class, detections from every image are ranked by score; each one is a hit if it
overlaps a not-yet-matched true box of its class in its image by at least `iou` (the best
such box is taken), else a false alarm. Average precision is the area under the resulting
precision-recall curve with precision made monotone (all-point interpolation, as PASCAL VOC
since 2010 and COCO's per-threshold AP before sampling). mAP is the mean over the classes
that have at least one true box; detections of other classes cannot be scored and are left
out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferd.stages.detect import box_iou


@dataclass(frozen=True)
class Box:
    label: str
    box: tuple[float, float, float, float]
    """x1, y1, x2, y2"""
    score: float = 1.0


def boxes_of(objects: Sequence[Any], what: str) -> list[Box]:
    """Parse [{"label", "box", ("score")}, ...] as a prediction's or a target's boxes."""
    parsed = []
    for obj in objects:
        try:
            x1, y1, x2, y2 = (float(v) for v in obj["box"])
            parsed.append(Box(str(obj["label"]), (x1, y1, x2, y2), float(obj.get("score", 1.0))))
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f'each {what} box is {{"label": ..., "box": [x1, y1, x2, y2]}}; got {obj!r:.80}'
            ) from None
    return parsed


def average_precision(hits: np.ndarray, true_count: int) -> float:
    """Area under the interpolated precision-recall curve of a score-ranked list of hits."""
    if true_count == 0:
        raise ValueError("average precision needs at least one true box")
    if hits.size == 0:
        return 0.0
    true_positives = np.cumsum(hits)
    recall = true_positives / true_count
    precision = true_positives / np.arange(1, hits.size + 1)
    # Precision at recall r is the best precision at any recall >= r.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float((steps * envelope).sum())


def _class_hits(
    detections: list[list[Box]], truths: list[list[Box]], label: str, iou: float
) -> tuple[np.ndarray, int]:
    ranked = sorted(
        (
            (d.score, image, d.box)
            for image, found in enumerate(detections)
            for d in found
            if d.label == label
        ),
        key=lambda entry: -entry[0],
    )
    true_boxes = [np.array([t.box for t in found if t.label == label]) for found in truths]
    matched = [np.zeros(len(boxes), dtype=bool) for boxes in true_boxes]
    hits = np.zeros(len(ranked))
    for rank, (_, image, box) in enumerate(ranked):
        candidates = true_boxes[image]
        if len(candidates) == 0:
            continue
        overlaps = box_iou(np.asarray(box), candidates)
        overlaps[matched[image]] = -1.0
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou:
            matched[image][best] = True
            hits[rank] = 1.0
    return hits, sum(len(boxes) for boxes in true_boxes)


def mean_average_precision(
    detections: Sequence[Sequence[Any]], truths: Sequence[Sequence[Any]], iou: float = 0.5
) -> tuple[float, dict[str, float]]:
    """mAP over images (paired lists of detections and true boxes), and each class's AP."""
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} detection lists for {len(truths)} images")
    found = [boxes_of(d, "detection") for d in detections]
    expected = [boxes_of(t, "target") for t in truths]
    labels = sorted({t.label for boxes in expected for t in boxes})
    if not labels:
        raise ValueError("mAP needs at least one true box among the targets")
    per_class = {}
    for label in labels:
        hits, count = _class_hits(found, expected, label, iou)
        per_class[label] = average_precision(hits, count)
    return float(np.mean(list(per_class.values()))), per_class
