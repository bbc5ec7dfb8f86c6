"""Detection postprocessing: box formats, IoU, class-wise NMS, thresholds, and boxes mapped
back to the original image."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from inferd.errors import ModelError
from inferd.spec import DetectStage
from inferd.stages import ImageGeometry, detect

LABELS = ["cat", "dog"]


def _stage(**options: Any) -> DetectStage:
    return DetectStage(type="detect", **options)


def _run(
    boxes: Any, scores: Any, context: dict[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    post = detect.build(_stage(**options), LABELS, "image", (100, 100))
    prediction = post.run(
        {"boxes": np.asarray(boxes, np.float32), "scores": np.asarray(scores, np.float32)},
        context or {},
    )
    return prediction.fields


# --- geometry helpers ---------------------------------------------------------------------------


def test_box_formats_convert_to_corners() -> None:
    corners = np.array([[10.0, 20.0, 30.0, 60.0]])
    assert detect.to_xyxy(corners, "xyxy").tolist() == corners.tolist()
    assert detect.to_xyxy(np.array([[10.0, 20.0, 20.0, 40.0]]), "xywh").tolist() == corners.tolist()
    centred = np.array([[20.0, 40.0, 20.0, 40.0]])
    assert detect.to_xyxy(centred, "cxcywh").tolist() == corners.tolist()


def test_iou_by_hand() -> None:
    box = np.array([0.0, 0.0, 10.0, 10.0])
    others = np.array(
        [
            [0.0, 0.0, 10.0, 10.0],  # the same box
            [5.0, 0.0, 15.0, 10.0],  # half overlaps: 50 / 150
            [10.0, 10.0, 20.0, 20.0],  # touches at a corner
            [3.0, 3.0, 3.0, 8.0],  # zero width
        ]
    )
    np.testing.assert_allclose(detect.box_iou(box, others), [1.0, 1 / 3, 0.0, 0.0])


def test_nms_keeps_the_best_of_overlapping_boxes_and_distant_ones() -> None:
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    kept = detect.non_max_suppression(boxes, np.array([0.8, 0.9, 0.5]), iou_threshold=0.5)
    assert kept.tolist() == [1, 2]


def test_nms_threshold_is_the_overlap_allowed() -> None:
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]])  # IoU 1/3
    scores = np.array([0.9, 0.8])
    assert detect.non_max_suppression(boxes, scores, iou_threshold=0.3).tolist() == [0]
    assert detect.non_max_suppression(boxes, scores, iou_threshold=0.4).tolist() == [0, 1]


# --- the stage ----------------------------------------------------------------------------------

BOXES = [[10, 10, 30, 30], [11, 10, 31, 30], [60, 60, 90, 90]]


def test_threshold_then_class_wise_nms() -> None:
    """Boxes 0 and 1 overlap: as the same class only the better stays; box 1 is also a dog,
    which survives because suppression never crosses classes."""
    scores = [[0.9, 0.1], [0.8, 0.7], [0.2, 0.6]]
    fields = _run(BOXES, scores, score_threshold=0.5)
    found = [(d["label"], round(d["score"], 3), d["box"]) for d in fields["detections"]]
    assert found == [
        ("cat", 0.9, [10.0, 10.0, 30.0, 30.0]),
        ("dog", 0.7, [11.0, 10.0, 31.0, 30.0]),
        ("dog", 0.6, [60.0, 60.0, 90.0, 90.0]),
    ]


def test_max_detections_keeps_the_highest_scores() -> None:
    scores = [[0.9, 0.0], [0.0, 0.0], [0.0, 0.95]]
    fields = _run(BOXES, scores, max_detections=1)
    assert [d["label"] for d in fields["detections"]] == ["dog"]


def test_nothing_above_threshold_is_an_empty_list() -> None:
    post = detect.build(_stage(score_threshold=0.5), LABELS, "image", (100, 100))
    prediction = post.run(
        {"boxes": np.asarray(BOXES, np.float32), "scores": np.full((3, 2), 0.1, np.float32)}, {}
    )
    assert prediction.fields == {"detections": []}
    assert prediction.tensors["boxes"].shape == (0, 4)
    assert prediction.tensors["num_detections"].tolist() == [0]


def test_v2_tensors_hold_the_same_detections() -> None:
    post = detect.build(_stage(), LABELS, "image", (100, 100))
    scores = np.array([[0.9, 0.0], [0.0, 0.0], [0.0, 0.6]], np.float32)
    prediction = post.run({"boxes": np.asarray(BOXES, np.float32), "scores": scores}, {})
    assert prediction.tensors["labels"].tolist() == [b"cat", b"dog"]
    np.testing.assert_allclose(prediction.tensors["scores"], [0.9, 0.6])
    assert prediction.tensors["boxes"].tolist() == [BOXES[0], BOXES[2]]
    assert prediction.tensors["num_detections"].tolist() == [2]


def test_boxes_are_mapped_back_through_the_letterbox() -> None:
    """A 200x100 image letterboxed onto 100x100 sits at scale 0.5, 25 px down."""
    geometry = ImageGeometry(200, 100, 0.5, 0.5, 0.0, 25.0)
    fields = _run([[10, 35, 30, 55]], [[0.9, 0.0]], {"image": geometry})
    assert fields["detections"][0]["box"] == [20.0, 20.0, 60.0, 60.0]


def test_normalized_centre_boxes_scale_by_the_model_input() -> None:
    fields = _run([[0.5, 0.5, 0.2, 0.4]], [[0.9, 0.0]], box_format="cxcywh", normalized=True)
    np.testing.assert_allclose(fields["detections"][0]["box"], [40.0, 30.0, 60.0, 70.0])


def test_a_single_class_score_vector_is_accepted() -> None:
    post = detect.build(_stage(), ["thing"], None, (100, 100))
    prediction = post.run(
        {"boxes": np.asarray(BOXES, np.float32), "scores": np.array([0.9, 0.1, 0.8])}, {}
    )
    assert [d["label"] for d in prediction.fields["detections"]] == ["thing", "thing"]


@pytest.mark.parametrize(
    ("boxes", "scores", "needle"),
    [
        (np.zeros((3, 5)), np.zeros((3, 2)), "must be [candidates, 4]"),
        (np.zeros((3, 4)), np.zeros((2, 2)), "must be [candidates, 4]"),
        (np.zeros((3, 4)), np.zeros((3, 5)), "scores 5 classes but 2 labels"),
    ],
)
def test_outputs_of_the_wrong_shape_are_a_model_error(
    boxes: np.ndarray, scores: np.ndarray, needle: str
) -> None:
    post = detect.build(_stage(), LABELS, None, (100, 100))
    with pytest.raises(ModelError, match=needle.replace("[", r"\[")):
        post.run({"boxes": boxes, "scores": scores}, {})
