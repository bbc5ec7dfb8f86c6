"""The Open Inference Protocol V2 through the official tritonclient[http] client."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.e2e.conftest import BUNDLED, SAMPLES, Server
from tests.support.onnx_models import affine_weights


@pytest.fixture()
def client(server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.host_port)


def test_health_and_server_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "inferd"
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata_reads_graph_and_spec(client: triton.InferenceServerClient) -> None:
    digits = client.get_model_metadata("digits")
    assert digits["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1, 1]}]
    assert {o["name"] for o in digits["outputs"]} == {"label", "score", "probabilities"}
    pair = client.get_model_metadata("pair", model_version="1")
    assert pair["inputs"] == [
        {"name": "a", "datatype": "FP32", "shape": [-1, -1]},
        {"name": "b", "datatype": "INT64", "shape": [-1]},
    ]
    assert client.is_model_ready("digits")
    assert client.is_model_ready("digits", "1")
    assert not client.is_model_ready("digits", "99")


@pytest.mark.parametrize("binary", [True, False])
def test_image_bytes_in_labels_out(client: triton.InferenceServerClient, binary: bool) -> None:
    png = (SAMPLES / "seven.png").read_bytes()
    image = triton.InferInput("image", [1, 1], "BYTES")
    image.set_data_from_numpy(np.array([[png]], dtype=np.object_), binary_data=True)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name in ("label", "score", "probabilities")
    ]
    result = client.infer("digits", [image], outputs=outputs)
    assert result.as_numpy("label").reshape(-1)[0] in (b"7", "7")
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (1, 10)
    assert abs(float(probabilities.sum()) - 1.0) < 1e-4
    assert float(result.as_numpy("score")[0, 0]) == pytest.approx(float(probabilities.max()))


@pytest.mark.parametrize("binary", [True, False])
def test_batched_tensor_model_matches_numpy(
    client: triton.InferenceServerClient, binary: bool
) -> None:
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    result = client.infer(
        "affine", [tensor], outputs=[triton.InferRequestedOutput("logits", binary_data=binary)]
    )
    weight, bias = affine_weights()
    np.testing.assert_allclose(result.as_numpy("logits"), x @ weight + bias, rtol=1e-5)


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_compressed_requests(client: triton.InferenceServerClient, compression: str) -> None:
    x = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    result = client.infer(
        "affine",
        [tensor],
        request_compression_algorithm=compression,
        response_compression_algorithm=compression,
    )
    weight, bias = affine_weights()
    np.testing.assert_allclose(result.as_numpy("logits"), x @ weight + bias, rtol=1e-5)


def test_several_inputs_int64_and_dynamic_dims(client: triton.InferenceServerClient) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([4, 9], dtype=np.int64)
    inputs = [triton.InferInput("a", [2, 3], "FP32"), triton.InferInput("b", [2], "INT64")]
    inputs[0].set_data_from_numpy(a, binary_data=True)
    inputs[1].set_data_from_numpy(b, binary_data=False)
    result = client.infer("pair", inputs)
    np.testing.assert_array_equal(result.as_numpy("sum"), a + 1)
    np.testing.assert_array_equal(result.as_numpy("count"), b * 2)


def test_unbatched_fixed_shape_model(client: triton.InferenceServerClient) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensor = triton.InferInput("x", [2, 3], "FP32")
    tensor.set_data_from_numpy(x)
    np.testing.assert_array_equal(client.infer("fixed", [tensor]).as_numpy("y"), x * 3)


def test_scalar_and_state_inputs_are_served_whole(client: triton.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("stateful")
    assert {t["name"]: t["shape"] for t in metadata["inputs"]} == {
        "x": [-1, 3],
        "h": [1, 3],
        "alpha": [],
    }
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    h = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)
    inputs = [
        triton.InferInput("x", [2, 3], "FP32"),
        triton.InferInput("h", [1, 3], "FP32"),
        triton.InferInput("alpha", [], "FP32"),
    ]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(h, binary_data=False)
    inputs[2].set_data_from_numpy(np.array(2.0, dtype=np.float32))
    result = client.infer("stateful", inputs)
    np.testing.assert_allclose(result.as_numpy("y"), x * 2.0 + h)
    np.testing.assert_allclose(result.as_numpy("h_next"), h + 1)


def test_tabular_regression_over_v2(client: triton.InferenceServerClient) -> None:
    spec_features = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    first = json.loads((BUNDLED / "diabetes" / "eval" / "test.jsonl").read_text().splitlines()[0])
    inputs = []
    for name in spec_features:
        tensor = triton.InferInput(name, [1, 1], "FP32")
        tensor.set_data_from_numpy(np.array([[first["instance"][name]]], dtype=np.float32))
        inputs.append(tensor)
    value = float(client.infer("diabetes", inputs).as_numpy("value").reshape(-1)[0])
    assert 0.0 < value < 400.0  # disease progression scores lie in 25..346


def test_errors_reach_the_client(client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("x", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="expects per item"):
        client.infer("affine", [tensor])
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("no-such-model", [tensor])
    image = triton.InferInput("image", [1, 1], "BYTES")
    image.set_data_from_numpy(np.array([[b"definitely not a png"]], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="not an image"):
        client.infer("digits", [image])
    assert client.is_server_ready()
