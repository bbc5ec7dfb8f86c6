"""Every bad request gets a 4xx that says what to fix, and the server keeps serving."""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest

from tests.e2e.conftest import BUNDLED, Server

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def _features() -> dict[str, float]:
    line = (BUNDLED / "diabetes" / "eval" / "test.jsonl").read_text().splitlines()[0]
    return dict(json.loads(line)["instance"])


def _v2(data: list[float], shape: list[int], datatype: str = "FP32", name: str = "x") -> dict:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}


CASES = [
    # (route, body, status, words the message must contain)
    ("/v2/models/affine/infer", b"{not json", 400, "not valid JSON"),
    ("/v2/models/affine/infer", _v2([1, 2, 3], [1, 3]), 400, "expects per item"),
    ("/v2/models/affine/infer", _v2([1, 2, 3, 4], [1, 4], "INT32"), 400, "expects FP32"),
    ("/v2/models/affine/infer", _v2([1, 2, 3, 4], [1, 4], name="y"), 400, "missing input"),
    ("/v2/models/affine/infer", _v2([1, 2, 3], [1, 4]), 400, "needs 4 values"),
    ("/v2/models/nope/infer", _v2([1], [1, 1]), 404, "unknown model"),
    ("/v2/models/affine/versions/7/infer", _v2([1, 2, 3, 4], [1, 4]), 404, "no version 7"),
    ("/v1/models/digits:predict", {"instances": [{"b64": "aGVsbG8="}]}, 400, "not an image"),
    ("/v1/models/digits:predict", {"instances": [{"b64": "###"}]}, 400, "base64"),
    ("/v1/models/digits:predict", {"rows": []}, 400, "instances"),
    ("/v1/models/diabetes:predict", {"instances": [{"age": 50}]}, 400, "missing input"),
    (
        "/v1/models/diabetes:predict",
        {"instances": [{**_features(), "height": 1.8}]},
        400,
        "unknown input(s) height",
    ),
    (
        "/v1/models/diabetes:predict",
        {"instances": [{**_features(), "bmi": "NaN"}]},
        400,
        "must be FP32 numbers",
    ),
    ("/v1/models/affine:predict", {"instances": [[1, 2], [1, 2, 3]]}, 400, "instance 0"),
]


@pytest.mark.parametrize(("route", "body", "status", "words"), CASES)
def test_bad_request_is_explained(
    server: Server, route: str, body: object, status: int, words: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with server.client() as http:
        reply = http.post(route, content=content)
        assert reply.status_code == status, reply.text
        assert words in reply.json()["error"]
        assert http.get("/v2/health/ready").status_code == 200


def test_nan_feature_over_binary_v2_is_refused(server: Server) -> None:
    """JSON cannot carry NaN, but the binary extension can: the tabular stage refuses it."""
    values = _features()
    values["bmi"] = float("nan")
    header = {
        "inputs": [
            {"name": n, "datatype": "FP32", "shape": [1, 1], "parameters": {"binary_data_size": 4}}
            for n in FEATURES
        ]
    }
    head = json.dumps(header).encode()
    body = head + b"".join(struct.pack("<f", values[n]) for n in FEATURES)
    with server.client() as http:
        reply = http.post(
            "/v2/models/diabetes/infer",
            content=body,
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
    assert reply.status_code == 400
    assert "bmi" in reply.json()["error"] and "NaN" in reply.json()["error"]


def test_body_over_limit_is_413(fault_server: Server) -> None:
    big = np.zeros((1, 40_000), dtype=np.float32).tolist()
    with fault_server.client() as http:
        reply = http.post("/v1/models/affine:predict", json={"instances": big})
        assert reply.status_code == 413
        assert "limit" in reply.json()["error"]
        assert http.get("/v2/health/ready").status_code == 200


def test_truncated_image_is_400(server: Server) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20).decode()
    with server.client() as http:
        reply = http.post("/v1/models/digits:predict", json={"instances": [{"b64": png}]})
    assert reply.status_code == 400


def test_unknown_route_and_method(server: Server) -> None:
    with server.client() as http:
        assert http.get("/v2/models/digits/infer").status_code == 405
        assert http.get("/nowhere").status_code == 404


def test_server_survives_a_burst_of_garbage(server: Server) -> None:
    rng = np.random.default_rng(0)
    with server.client() as http:
        for _ in range(30):
            garbage = rng.integers(0, 256, size=int(rng.integers(1, 300)), dtype=np.uint8)
            reply = http.post("/v2/models/affine/infer", content=garbage.tobytes())
            assert 400 <= reply.status_code < 500
        assert http.get("/v2/health/ready").status_code == 200
