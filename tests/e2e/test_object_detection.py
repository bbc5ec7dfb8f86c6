"""Object detection end to end: digit-detector over V1 (a PNG) and V2 (BYTES), with boxes in
the pixels of the image that was sent."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import tritonclient.http as triton
from PIL import Image, ImageOps

from inferd.stages.detect import box_iou
from tests.e2e.conftest import BUNDLED, ROOT, Server, v2_file_request
from tests.e2e.test_cli import inferd
from tests.support.burst import alone_and_in_a_burst

MODEL = "/v1/models/digit-detector:predict"
SAMPLES = ROOT / "examples" / "digit_detector" / "samples"
SCENE = (SAMPLES / "scene.png").read_bytes()
EMPTY = (SAMPLES / "empty.png").read_bytes()
EXAMPLES = [
    json.loads(line)
    for line in (BUNDLED / "digit-detector" / "eval" / "test.jsonl").read_text().splitlines()
]


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


def _detect(server: Server, image: bytes) -> list[dict[str, Any]]:
    with server.client() as http:
        reply = http.post(MODEL, json={"instances": [_b64(image)]})
    assert reply.status_code == 200, reply.text
    detections: list[dict[str, Any]] = reply.json()["predictions"][0]["detections"]
    return detections


def test_every_digit_of_the_sample_scene_is_found_where_it_is(server: Server) -> None:
    """Each true box is matched by a detection of its label overlapping it by IoU >= 0.5, in
    the coordinates of the (non-square) PNG itself, not the model's letterboxed square."""
    truths = json.loads((SAMPLES / "scene.json").read_text())
    width, height = Image.open(io.BytesIO(SCENE)).size
    assert width != height
    found = _detect(server, SCENE)
    for truth in truths:
        same_label = [d["box"] for d in found if d["label"] == truth["label"]]
        assert same_label, f"no {truth['label']} found"
        overlap = box_iou(np.array(truth["box"]), np.array(same_label)).max()
        assert overlap >= 0.5, (truth, found)
    for detection in found:
        x1, y1, x2, y2 = detection["box"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert 0 < detection["score"] <= 1


def test_an_image_with_no_digits_gets_an_empty_list(server: Server) -> None:
    assert _detect(server, EMPTY) == []


def test_v2_tensors_pad_each_image_to_the_longest(server: Server) -> None:
    client = triton.InferenceServerClient(url=server.host_port)
    tensor = triton.InferInput("image", [2, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[SCENE], [EMPTY]], dtype=np.object_))
    result = client.infer("digit-detector", [tensor])
    counts = result.as_numpy("num_detections")[:, 0].tolist()
    expected = _detect(server, SCENE)
    assert counts == [len(expected), 0]
    boxes = result.as_numpy("boxes")
    assert boxes.shape == (2, len(expected), 4)
    labels = [v.decode() for v in result.as_numpy("labels")[0]]
    assert labels == [d["label"] for d in expected]
    np.testing.assert_allclose(boxes[0], [d["box"] for d in expected], atol=1e-3)
    assert not boxes[1].any()


def test_v2_json_with_base64_bytes(server: Server) -> None:
    body = v2_file_request("image", SCENE)
    with server.client() as http:
        reply = http.post("/v2/models/digit-detector/infer", json=body)
    assert reply.status_code == 200, reply.text
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    expected = _detect(server, SCENE)
    assert outputs["labels"]["data"] == [d["label"] for d in expected]
    assert outputs["boxes"]["shape"] == [1, len(expected), 4]


def test_v2_answer_for_nothing_found_is_zero_rows(server: Server) -> None:
    client = triton.InferenceServerClient(url=server.host_port)
    tensor = triton.InferInput("image", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[EMPTY]], dtype=np.object_))
    result = client.infer("digit-detector", [tensor])
    assert result.as_numpy("num_detections").tolist() == [[0]]
    assert result.as_numpy("boxes").shape == (1, 0, 4)


def test_batched_answers_equal_single_answers(server: Server) -> None:
    instances = [e["instance"] for e in EXAMPLES[:16]]
    for alone, batched in alone_and_in_a_burst(server.host_port, MODEL, instances):
        got, want = batched["detections"], alone["detections"]
        assert [d["label"] for d in got] == [d["label"] for d in want]
        np.testing.assert_allclose(
            [d["box"] for d in got] or np.zeros((0, 4)),
            [d["box"] for d in want] or np.zeros((0, 4)),
            atol=1e-3,
        )


def test_a_file_that_is_not_an_image_is_400(server: Server) -> None:
    with server.client() as http:
        reply = http.post(MODEL, json={"instances": [_b64(b"not a png")]})
        assert reply.status_code == 400 and "is not an image file" in reply.json()["error"]
        assert http.post(MODEL, json={"instances": [_b64(SCENE)]}).status_code == 200


def test_held_out_map_reaches_0_8() -> None:
    done = inferd("evaluate", "digit-detector", "-r", str(BUNDLED))
    assert done.returncode == 0, done.stdout + done.stderr
    assert float(done.stdout.split("map = ")[1].split()[0]) >= 0.8
    assert "average precision per class" in done.stdout


def test_predict_cli_lists_what_it_found() -> None:
    scene = inferd("predict", "digit-detector", str(SAMPLES / "scene.png"), "-r", str(BUNDLED))
    empty = inferd("predict", "digit-detector", str(SAMPLES / "empty.png"), "-r", str(BUNDLED))
    assert scene.returncode == 0 and empty.returncode == 0, scene.stderr + empty.stderr
    count = len(json.loads((SAMPLES / "scene.json").read_text()))
    first, *rest = scene.stdout.splitlines()
    assert first == f"{len(rest)} found" and len(rest) >= count
    assert empty.stdout.strip() == "nothing found"


def test_dark_digits_on_white_paper_are_found_the_same(server: Server) -> None:
    """The image stage inverts a picture with a light border (model.yaml `invert: auto`)."""
    buffer = io.BytesIO()
    ImageOps.invert(Image.open(io.BytesIO(SCENE)).convert("L")).save(buffer, "PNG")
    assert _detect(server, buffer.getvalue()) == _detect(server, SCENE)
