"""The HTTP transport, driven in-process through ASGI: routes, V2/V1 bodies, auth, limits."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from inferd import __version__
from inferd.app import App, create_app
from tests.support import onnx_models

LABELS = ["setosa", "versicolor", "virginica"]

Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def _build_models(root: Path) -> None:
    onnx_models.affine(root / "affine" / "1" / "model.onnx")
    onnx_models.affine(root / "iris" / "1" / "model.onnx", seed=4)
    (root / "iris" / "model.yaml").write_text(
        yaml.safe_dump(
            {
                "task": "classification",
                "labels": LABELS,
                "postprocess": [{"type": "classify", "top_k": 1}],
            }
        ),
        encoding="utf-8",
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _build_models(tmp_path)
    return tmp_path


@asynccontextmanager
async def _serving(server: App) -> AsyncIterator[httpx.AsyncClient]:
    await server.startup()
    try:
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        await server.shutdown()


@pytest.fixture
def serve(repo: Path) -> Client:
    """`async with serve(**create_app options) as client:` — a started app and its client."""

    def start(**options: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return _serving(create_app(repo, **options))

    return start


@pytest.fixture
async def client(serve: Client) -> AsyncIterator[httpx.AsyncClient]:
    async with serve() as started:
        yield started


def _affine(x: np.ndarray) -> np.ndarray:
    weight, bias = onnx_models.affine_weights()
    return np.asarray(x, dtype=np.float32) @ weight + bias


def _v2_body(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}
        ],
        **extra,
    }


X = np.array([[1.0, 0.5, -2.0, 3.0], [0.0, 1.0, 0.25, -1.0]], dtype=np.float32)


# --- routes -------------------------------------------------------------------------------------


async def test_health_routes(client: httpx.AsyncClient) -> None:
    live = await client.get("/v2/health/live")
    assert (live.status_code, live.json()) == (200, {"live": True})
    ready = await client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


async def test_not_ready_while_a_model_is_broken(repo: Path, serve: Client) -> None:
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "1" / "model.onnx").write_bytes(b"junk")
    async with serve() as client:
        ready = await client.get("/v2/health/ready")
        assert (ready.status_code, ready.json()) == (503, {"ready": False})
        model = await client.get("/v2/models/broken/ready")
        assert (model.status_code, model.json()) == (503, {"name": "broken", "ready": False})
        index = (await client.get("/v2/repository/index")).json()
        broken = [row for row in index if row["name"] == "broken"]
        assert len(broken) == 1 and broken[0]["state"] == "UNAVAILABLE"
        assert "could not be loaded by onnxruntime" in broken[0]["reason"]
        infer = await client.post("/v2/models/broken/infer", json=_v2_body(X))
        assert infer.status_code == 503
        assert infer.json()["error"].startswith("model 'broken' is not ready: version 1: ")


async def test_server_metadata(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "name": "inferd",
        "version": __version__,
        "extensions": ["binary_tensor_data", "kserve_v1", "metrics"],
    }


async def test_model_metadata_and_readiness_routes(client: httpx.AsyncClient) -> None:
    for path in ("/v2/models/iris", "/v2/models/iris/versions/1"):
        metadata = await client.get(path)
        assert metadata.status_code == 200
        assert metadata.json()["name"] == "iris"
        assert metadata.json()["outputs"][0] == {
            "name": "label",
            "datatype": "BYTES",
            "shape": [-1, 1],
        }
    for path in ("/v2/models/iris/ready", "/v2/models/iris/versions/1/ready", "/v1/models/iris"):
        ready = await client.get(path)
        assert (ready.status_code, ready.json()) == (200, {"name": "iris", "ready": True})
    missing = await client.get("/v2/models/iris/versions/4/ready")
    assert missing.status_code == 404
    assert "model 'iris' has no version 4" in missing.json()["error"]


async def test_repository_index_takes_get_and_post(client: httpx.AsyncClient) -> None:
    expected = [
        {"name": "affine", "version": "1", "state": "READY"},
        {"name": "iris", "version": "1", "state": "READY"},
    ]
    assert (await client.get("/v2/repository/index")).json() == expected
    assert (await client.post("/v2/repository/index")).json() == expected


async def test_unknown_path_is_404_with_a_message(client: httpx.AsyncClient) -> None:
    response = await client.get("/v3/models")
    assert response.status_code == 404
    assert response.json() == {"error": "no route /v3/models; see the README for the API"}
    assert "x-request-id" not in response.headers


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/models/ghost/infer", json=_v2_body(X))
    assert response.status_code == 404
    assert response.json()["error"] == "unknown model 'ghost'; this server has: affine, iris"
    assert (await client.get("/v2/models/ghost")).status_code == 404
    assert (
        await client.post("/v1/models/ghost:predict", json={"instances": [1]})
    ).status_code == 404


async def test_unknown_version_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/models/affine/versions/9/infer", json=_v2_body(X))
    assert response.status_code == 404
    assert response.json()["error"] == (
        "model 'affine' has no version 9 loaded; loaded versions: 1"
    )


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/models/affine/infer")
    assert response.status_code == 405
    assert response.json() == {"error": "/v2/models/affine/infer takes POST, not GET"}
    put = await client.put("/v2/health/live")
    assert put.status_code == 405
    assert put.json() == {"error": "/v2/health/live takes GET, not PUT"}


async def test_405_names_the_allowed_methods_in_an_allow_header(client: httpx.AsyncClient) -> None:
    # RFC 9110 15.5.6: a 405 response MUST carry an Allow header listing the methods.
    response = await client.get("/v2/models/affine/infer")
    assert response.status_code == 405
    assert response.headers.get("allow") == "POST"


# --- V2 infer -----------------------------------------------------------------------------------


async def test_v2_json_round_trip(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/models/affine/infer", json=_v2_body(X, id="my-id"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["model_name"] == "affine"
    assert body["model_version"] == "1"
    assert body["id"] == "my-id"
    [logits] = body["outputs"]
    assert (logits["name"], logits["datatype"], logits["shape"]) == ("logits", "FP32", [2, 3])
    np.testing.assert_allclose(np.reshape(logits["data"], (2, 3)), _affine(X), rtol=1e-5, atol=1e-6)


async def test_v2_classifier_outputs_can_be_selected(client: httpx.AsyncClient) -> None:
    body = _v2_body(X[:1], outputs=[{"name": "label"}])
    response = await client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 200
    [label] = response.json()["outputs"]
    weight, bias = onnx_models.affine_weights(seed=4)
    best = int(np.argmax(X[0] @ weight + bias))
    assert label == {"name": "label", "datatype": "BYTES", "shape": [1, 1], "data": [LABELS[best]]}


async def test_v2_bad_input_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/models/affine/infer", json=_v2_body(np.ones((1, 3))))
    assert response.status_code == 400
    assert response.json() == {
        "error": "input 'x' has per item shape [3] but the model expects per item [4] "
        "after the batch dimension"
    }
    not_json = await client.post("/v2/models/affine/infer", content=b"{nope")
    assert not_json.status_code == 400
    assert not_json.json()["error"].startswith("request body is not valid JSON")


async def test_v2_binary_tensors_in_and_out(client: httpx.AsyncClient) -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [2, 4],
                    "parameters": {"binary_data_size": X.nbytes},
                }
            ],
            "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
        }
    ).encode()
    response = await client.post(
        "/v2/models/affine/infer",
        content=header + X.astype("<f4").tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    json_length = int(response.headers["inference-header-content-length"])
    doc = json.loads(response.content[:json_length])
    [logits] = doc["outputs"]
    assert logits["shape"] == [2, 3]
    assert logits["parameters"] == {"binary_data_size": 24}
    assert "data" not in logits
    raw = response.content[json_length:]
    assert len(raw) == 24
    values = np.frombuffer(raw, dtype="<f4").reshape(2, 3)
    np.testing.assert_allclose(values, _affine(X), rtol=1e-5, atol=1e-6)


async def test_v2_binary_output_of_a_bytes_tensor(client: httpx.AsyncClient) -> None:
    body = _v2_body(X, parameters={"binary_data_output": True}, outputs=[{"name": "label"}])
    response = await client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 200
    json_length = int(response.headers["inference-header-content-length"])
    raw = response.content[json_length:]
    weight, bias = onnx_models.affine_weights(seed=4)
    labels = [LABELS[int(i)] for i in np.argmax(X @ weight + bias, axis=1)]
    expected = b"".join(struct.pack("<I", len(s)) + s.encode() for s in labels)
    assert raw == expected


async def test_v2_binary_header_must_be_a_byte_count(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v2/models/affine/infer",
        json=_v2_body(X),
        headers={"Inference-Header-Content-Length": "ten"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "inference-header-content-length must be a byte count; got 'ten'"
    }


# --- deadlines ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "timeout_ms must be a number of milliseconds; got 'soon'"),
        ("-5", "timeout_ms must be positive; got '-5'"),
        ("0", "timeout_ms must be positive; got '0'"),
    ],
)
async def test_timeout_header_is_validated(
    client: httpx.AsyncClient, value: str, message: str
) -> None:
    response = await client.post(
        "/v2/models/affine/infer", json=_v2_body(X), headers={"Inferd-Timeout-Ms": value}
    )
    assert response.status_code == 400
    assert response.json() == {"error": message}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "timeout_ms must be a number of milliseconds; got 'soon'"),
        ([100], "timeout_ms must be a number of milliseconds; got [100]"),
        (-1, "timeout_ms must be positive; got -1"),
    ],
)
async def test_timeout_parameter_is_validated(
    client: httpx.AsyncClient, value: Any, message: str
) -> None:
    v2 = await client.post(
        "/v2/models/affine/infer", json=_v2_body(X, parameters={"timeout_ms": value})
    )
    assert (v2.status_code, v2.json()) == (400, {"error": message})
    v1 = await client.post(
        "/v1/models/affine:predict",
        json={"instances": [[1, 2, 3, 4]], "parameters": {"timeout_ms": value}},
    )
    assert (v1.status_code, v1.json()) == (400, {"error": message})


async def test_nan_timeout_is_refused(client: httpx.AsyncClient) -> None:
    # "nan" parses as a float but is no number of milliseconds: a 400, not a 504
    response = await client.post(
        "/v2/models/affine/infer", json=_v2_body(X), headers={"Inferd-Timeout-Ms": "nan"}
    )
    assert response.status_code == 400
    assert "timeout_ms" in response.json()["error"]


async def test_a_generous_timeout_is_accepted(client: httpx.AsyncClient) -> None:
    header = await client.post(
        "/v2/models/affine/infer", json=_v2_body(X), headers={"Inferd-Timeout-Ms": "60000"}
    )
    assert header.status_code == 200
    parameter = await client.post(
        "/v1/models/affine:predict",
        json={"instances": [[1, 2, 3, 4]], "parameters": {"timeout_ms": 60000}},
    )
    assert parameter.status_code == 200


async def test_the_parameter_wins_over_the_header(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v2/models/affine/infer",
        json=_v2_body(X, parameters={"timeout_ms": 60000}),
        headers={"Inferd-Timeout-Ms": "never"},
    )
    assert response.status_code == 200


# --- request ids --------------------------------------------------------------------------------


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    headers = {"X-Request-Id": "trace-abc-123"}
    v2 = await client.post("/v2/models/affine/infer", json=_v2_body(X), headers=headers)
    assert v2.headers["x-request-id"] == "trace-abc-123"
    assert v2.json()["id"] == "trace-abc-123"  # the body had no id of its own
    v1 = await client.post(
        "/v1/models/affine:predict", json={"instances": [[1, 2, 3, 4]]}, headers=headers
    )
    assert v1.headers["x-request-id"] == "trace-abc-123"
    bad = await client.post(
        "/v1/models/affine:predict", json={"instances": [[1, 2]]}, headers=headers
    )
    assert bad.status_code == 400
    assert bad.headers["x-request-id"] == "trace-abc-123"


async def test_request_ids_are_made_when_not_sent(client: httpx.AsyncClient) -> None:
    first = await client.post("/v2/models/affine/infer", json=_v2_body(X))
    second = await client.post("/v2/models/affine/infer", json=_v2_body(X))
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(ids) and ids[0] != ids[1]
    assert first.json()["id"] == ids[0]


# --- API key ------------------------------------------------------------------------------------

GUARDED = [
    ("GET", "/v2"),
    ("GET", "/v2/models/affine"),
    ("GET", "/v2/models/affine/ready"),
    ("GET", "/v2/repository/index"),
    ("GET", "/v1/models/affine"),
    ("GET", "/metrics"),
]


async def test_api_key_guards_every_route_but_health(serve: Client) -> None:
    async with serve(api_key="k") as client:
        for path in ("/v2/health/live", "/v2/health/ready"):
            assert (await client.get(path)).status_code == 200, path
        for method, path in GUARDED:
            response = await client.request(method, path)
            assert response.status_code == 401, path
            assert response.json() == {
                "error": "missing or wrong API key; send it as 'Authorization: Bearer <key>' "
                "or 'X-API-Key: <key>'"
            }
        infer = await client.post("/v2/models/affine/infer", json=_v2_body(X))
        assert infer.status_code == 401
        predict = await client.post("/v1/models/affine:predict", json={"instances": [[1, 2, 3, 4]]})
        assert predict.status_code == 401


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer k"}, {"authorization": "bearer k"}, {"X-API-Key": "k"}],
    ids=["bearer", "bearer-lowercase", "x-api-key"],
)
async def test_api_key_accepted(serve: Client, headers: dict[str, str]) -> None:
    async with serve(api_key="k") as client:
        for method, path in GUARDED:
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 200, path
        infer = await client.post("/v2/models/affine/infer", json=_v2_body(X), headers=headers)
        assert infer.status_code == 200
        np.testing.assert_allclose(
            np.reshape(infer.json()["outputs"][0]["data"], (2, 3)), _affine(X), rtol=1e-5
        )


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"X-API-Key": "K"},
        {"Authorization": "Basic k"},
        {"Authorization": "Bearer kk"},
        {"Authorization": "Bearer wrong", "X-API-Key": "k"},  # a wrong bearer is not overruled
    ],
)
async def test_wrong_api_key_is_refused(serve: Client, headers: dict[str, str]) -> None:
    async with serve(api_key="k") as client:
        response = await client.get("/v2/models/affine", headers=headers)
        assert response.status_code == 401
        assert "missing or wrong API key" in response.json()["error"]


async def test_no_api_key_needed_by_default(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/models/affine")).status_code == 200


# --- body limits and V1 bodies ------------------------------------------------------------------


async def test_body_over_the_limit_is_413(serve: Client) -> None:
    async with serve(max_body_bytes=200) as client:
        small = await client.post("/v2/models/affine/infer", json=_v2_body(X[:1]))
        assert small.status_code == 200
        big = np.ones((20, 4), dtype=np.float32)
        response = await client.post("/v2/models/affine/infer", json=_v2_body(big))
        assert response.status_code == 413
        message = response.json()["error"]
        assert "over the server's limit of 200" in message
        assert "--max-body-size" in message
        v1 = await client.post("/v1/models/affine:predict", json={"instances": big.tolist()})
        assert v1.status_code == 413


async def test_streamed_body_over_the_limit_is_413(serve: Client) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies as it reads
        for _ in range(10):
            yield b" " * 50

    async with serve(max_body_bytes=200) as client:
        response = await client.post("/v2/models/affine/infer", content=chunks())
        assert response.status_code == 413
        assert response.json() == {
            "error": "request body is over the server's limit of 200 bytes; send fewer items "
            "per request or start the server with a larger --max-body-size"
        }


@pytest.mark.parametrize(
    "body",
    [[[1, 2, 3, 4]], {"inputs": [[1, 2, 3, 4]]}, {"instances": {"x": [1, 2, 3, 4]}}, "x"],
    ids=["list", "no-instances", "instances-object", "string"],
)
async def test_v1_body_must_be_an_instances_object(client: httpx.AsyncClient, body: Any) -> None:
    response = await client.post("/v1/models/affine:predict", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": 'the body must be a JSON object {"instances": [...]}'}


async def test_v1_empty_instances_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/models/affine:predict", json={"instances": []})
    assert response.status_code == 400
    assert response.json() == {"error": '"instances" is empty; send at least one instance'}


async def test_v1_predictions(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/models/iris/versions/1:predict", json={"instances": X.tolist()}
    )
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    weight, bias = onnx_models.affine_weights(seed=4)
    logits = X @ weight + bias
    assert [p["label"] for p in predictions] == [LABELS[int(i)] for i in logits.argmax(axis=1)]
    for prediction, row in zip(predictions, logits, strict=True):
        exp = np.exp(row - row.max())
        assert prediction["score"] == pytest.approx(float((exp / exp.sum()).max()), rel=1e-5)
        assert len(prediction["top_k"]) == 1


async def test_v1_bad_instance_is_named(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/models/affine:predict", json={"instances": [[1, 2, 3, 4], [1, 2, 3]]}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("instance 1: input 'x' has per item shape [3]")


# --- /metrics -----------------------------------------------------------------------------------


def _request_counts(text: str) -> dict[tuple[str, str, str], float]:
    counts = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "inferd_requests_total":
                labels = sample.labels
                counts[(labels["model"], labels["protocol"], labels["status"])] = sample.value
    return counts


async def test_metrics_count_requests_by_model_protocol_and_status(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/v2/models/affine/infer", json=_v2_body(X))
    await client.post("/v2/models/affine/infer", json=_v2_body(X))
    await client.post("/v2/models/affine/infer", json=_v2_body(np.ones((1, 2))))
    await client.post("/v1/models/iris:predict", json={"instances": X.tolist()})
    await client.post("/v1/models/iris:predict", json={"instances": []})
    await client.post("/v2/models/ghost/infer", json=_v2_body(X))
    await client.get("/v2/models/phantom/ready")
    await client.get("/v2/health/live")  # not about a model: not counted
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4"
    text = response.text
    assert _request_counts(text) == {
        ("affine", "v2", "200"): 2.0,
        ("affine", "v2", "400"): 1.0,
        ("iris", "v1", "200"): 1.0,
        ("iris", "v1", "400"): 1.0,
        ("-", "v2", "404"): 2.0,
    }
    assert 'inferd_stage_seconds_count{model="affine",stage="total"} 2.0' in text
    assert 'inferd_queue_depth{model="affine",version="1"} 0.0' in text
    assert 'inferd_batch_size_sum{model="iris",version="1"} 2.0' in text


async def test_digits_that_are_not_ascii_are_refused_not_a_crash(client: httpx.AsyncClient) -> None:
    """'²'.isdigit() is True but int('²') raises: a header or version made of it is a 4xx."""
    header = await client.post(
        "/v2/models/affine/infer",
        content=b"{}",
        headers={"Inference-Header-Content-Length": b"\xb2"},  # '²' in latin-1
    )
    assert header.status_code == 400 and "byte count" in header.json()["error"]
    for path in ("/v2/models/affine/versions/%C2%B2/ready", "/v2/models/affine/versions/%C2%B2"):
        version = await client.get(path)
        assert version.status_code == 404, version.text
