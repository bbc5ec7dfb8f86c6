"""Detection through the pipeline: the image stage's geometry reaches the detect stage, and
V2 responses stack items that found different numbers of objects."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from inferd.api.v2 import output_tensors
from inferd.backends import load_backend
from inferd.errors import SpecError
from inferd.pipeline import ItemResult, Pipeline
from inferd.spec import parse_spec
from inferd.stages import Item
from tests.support import onnx_models

BOXES = np.array([[8.0, 16.0, 24.0, 32.0], [40.0, 40.0, 56.0, 60.0]])
"""The two boxes the test detector always proposes, in its 64x64 input's pixels."""
WEIGHTS = np.array([[1.0, 0.0], [0.0, 0.8]])
"""Box 0 is a `cat` and box 1 a `dog`, scored by the image's brightness (0..1)."""

SPEC: dict[str, Any] = {
    "name": "detector",
    "task": "detection",
    "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1]}],
    "preprocess": [
        {"type": "image", "color": "L", "size": [64, 64], "keep_aspect": True, "pad_value": 255}
    ],
    "postprocess": [{"type": "detect", "score_threshold": 0.5}],
}


def _pipeline(folder: Path, spec: dict[str, Any] = SPEC) -> Pipeline:
    onnx_models.brightness_detector(folder / "model.onnx", BOXES, WEIGHTS)
    model_spec = parse_spec(spec)
    return Pipeline(model_spec, load_backend(model_spec, folder), ["cat", "dog"])


def _png(width: int, height: int, level: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), level).save(buffer, "PNG")
    return buffer.getvalue()


def _detections(pipeline: Pipeline, images: list[bytes]) -> list[list[dict[str, Any]]]:
    results = pipeline.run_batch([Item.of({"image": image}) for image in images])
    found = []
    for result in results:
        assert isinstance(result, ItemResult), result
        found.append(result.prediction.fields["detections"])
    return found


def test_boxes_come_back_in_the_original_images_pixels(tmp_path: Path) -> None:
    """A white 128x256 page letterboxed to 64x64 is shrunk 4x and centred 16 px from the
    left, so model box (8, 16, 24, 32) is (-32, 64, 32, 128) on the page, clipped at its edge."""
    [found] = _detections(_pipeline(tmp_path), [_png(128, 256, 255)])
    assert [(d["label"], d["box"]) for d in found] == [
        ("cat", [0.0, 64.0, 32.0, 128.0]),
        ("dog", [96.0, 160.0, 128.0, 240.0]),  # x2 = 160, clipped to the page
    ]


def test_items_of_one_batch_keep_their_own_geometry(tmp_path: Path) -> None:
    wide, tall = _detections(_pipeline(tmp_path), [_png(256, 128, 255), _png(128, 256, 255)])
    assert wide[0]["box"] == [32.0, 0.0, 96.0, 64.0]
    assert tall[0]["box"] == [0.0, 64.0, 32.0, 128.0]


def test_a_dark_image_finds_nothing_and_stacks_with_one_that_does(tmp_path: Path) -> None:
    """Padding to the longest item lets one V2 tensor carry both answers; num_detections
    says how many rows of each are real."""
    pipeline = _pipeline(
        tmp_path, {**SPEC, "preprocess": [{**SPEC["preprocess"][0], "pad_value": 0}]}
    )
    results = pipeline.run_batch(
        [Item.of({"image": _png(64, 64, 0)}), Item.of({"image": _png(64, 64, 255)})]
    )
    predictions = [r.prediction for r in results if isinstance(r, ItemResult)]
    assert [len(p.fields["detections"]) for p in predictions] == [0, 2]
    tensors = output_tensors(pipeline.spec.name, True, pipeline.ragged, predictions)
    assert tensors["num_detections"].tolist() == [[0], [2]]
    assert tensors["boxes"].shape == (2, 2, 4)
    assert tensors["boxes"][0].tolist() == [[0.0] * 4] * 2
    assert tensors["labels"].tolist() == [[b"", b""], [b"cat", b"dog"]]
    assert [t.name for t in pipeline.outputs] == ["boxes", "scores", "labels", "num_detections"]


def test_detect_stage_names_an_output_the_model_lacks(tmp_path: Path) -> None:
    spec = {**SPEC, "postprocess": [{"type": "detect", "boxes": "bbox"}]}
    with pytest.raises(SpecError, match="reads output 'bbox'"):
        _pipeline(tmp_path, spec)


def test_detect_stage_image_input_must_be_an_image_stage(tmp_path: Path) -> None:
    spec = {**SPEC, "postprocess": [{"type": "detect", "image_input": "photo"}]}
    with pytest.raises(SpecError, match="image_input 'photo' is not the input of an image"):
        _pipeline(tmp_path, spec)


def test_detection_task_needs_a_detect_stage() -> None:
    with pytest.raises(SpecError, match='needs a postprocess stage of type "detect"'):
        parse_spec({**SPEC, "postprocess": [{"type": "classify"}]})
