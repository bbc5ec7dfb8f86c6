"""KServe V1 `:predict` with httpx: instances a person sends, predictions a person reads."""

from __future__ import annotations

import base64
import json

import numpy as np

from tests.e2e.conftest import BUNDLED, SAMPLES, Server
from tests.support.onnx_models import affine_weights


def _b64(path_name: str) -> dict[str, str]:
    return {"b64": base64.b64encode((SAMPLES / path_name).read_bytes()).decode()}


def test_digit_image_as_b64(server: Server) -> None:
    with server.client() as http:
        reply = http.post("/v1/models/digits:predict", json={"instances": [_b64("seven.png")]})
    assert reply.status_code == 200, reply.text
    [prediction] = reply.json()["predictions"]
    assert prediction["label"] == "7"
    assert 0.5 < prediction["score"] <= 1.0
    assert prediction["top_k"][0]["label"] == "7"
    scores = [t["score"] for t in prediction["top_k"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3


def test_several_instances_keyed_by_input_name_and_version(server: Server) -> None:
    instances = [{"image": _b64("seven.png")}, _b64("three.jpg")]
    with server.client() as http:
        reply = http.post("/v1/models/digits/versions/1:predict", json={"instances": instances})
    assert reply.status_code == 200, reply.text
    assert [p["label"] for p in reply.json()["predictions"]] == ["7", "3"]


def test_named_features_regression(server: Server) -> None:
    lines = (BUNDLED / "diabetes" / "eval" / "test.jsonl").read_text().splitlines()[:5]
    examples = [json.loads(line) for line in lines]
    # Feature order in the instance does not matter: send them reversed.
    instances = [dict(reversed(list(e["instance"].items()))) for e in examples]
    with server.client() as http:
        reply = http.post("/v1/models/diabetes:predict", json={"instances": instances})
    assert reply.status_code == 200, reply.text
    values = [p["value"] for p in reply.json()["predictions"]]
    assert len(values) == 5 and all(20.0 < v < 400.0 for v in values)
    with server.client() as http:
        again = http.post(
            "/v1/models/diabetes:predict", json={"instances": [e["instance"] for e in examples]}
        )
    assert [p["value"] for p in again.json()["predictions"]] == values


def test_tensor_model_bare_instances(server: Server) -> None:
    x = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]]
    with server.client() as http:
        reply = http.post("/v1/models/affine:predict", json={"instances": x})
    assert reply.status_code == 200, reply.text
    weight, bias = affine_weights()
    expected = np.asarray(x, dtype=np.float32) @ weight + bias
    got = np.asarray([p["logits"] for p in reply.json()["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_model_status(server: Server) -> None:
    with server.client() as http:
        assert http.get("/v1/models/digits").json() == {"name": "digits", "ready": True}
        assert http.get("/v1/models/nope").status_code == 404
