"""The ONNX Runtime backend and the backend registry, on real graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inferd.backends import load_backend
from inferd.backends import onnx as onnx_backend
from inferd.errors import SpecError
from inferd.spec import ModelSpec, RuntimeSpec
from tests.support import onnx_models


def _specs(tensors: list) -> list[tuple[str, str, list[int]]]:
    return [(t.name, t.datatype, t.shape) for t in tensors]


def test_affine_tensor_specs_and_run(tmp_path: Path) -> None:
    onnx_models.affine(tmp_path / "model.onnx", features=4, classes=3, seed=7)
    backend = load_backend(ModelSpec(name="affine"), tmp_path)
    assert _specs(backend.inputs) == [("x", "FP32", [-1, 4])]
    assert _specs(backend.outputs) == [("logits", "FP32", [-1, 3])]
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 4
    weight, bias = onnx_models.affine_weights(seed=7)
    out = backend.run({"x": x})
    assert set(out) == {"logits"}
    assert out["logits"].shape == (2, 3)
    np.testing.assert_allclose(out["logits"], x @ weight + bias, rtol=1e-5)
    backend.close()


def test_dynamic_dims_and_int64(tmp_path: Path) -> None:
    onnx_models.two_in_two_out(tmp_path / "model.onnx")
    backend = load_backend(ModelSpec(name="two"), tmp_path)
    assert _specs(backend.inputs) == [("a", "FP32", [-1, -1]), ("b", "INT64", [-1])]
    assert _specs(backend.outputs) == [("sum", "FP32", [-1, -1]), ("count", "INT64", [-1])]
    out = backend.run(
        {"a": np.array([[1.5, 2.0, 3.0]], dtype=np.float32), "b": np.array([21], dtype=np.int64)}
    )
    np.testing.assert_array_equal(out["sum"], [[2.5, 3.0, 4.0]])
    assert out["count"].dtype == np.int64
    assert out["count"].tolist() == [42]


def test_fixed_shape(tmp_path: Path) -> None:
    onnx_models.fixed_shape(tmp_path / "model.onnx")
    backend = load_backend(ModelSpec(name="fixed"), tmp_path)
    assert _specs(backend.inputs) == [("x", "FP32", [2, 3])]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(backend.run({"x": x})["y"], x * 3)


def test_custom_artifact_name(tmp_path: Path) -> None:
    onnx_models.fixed_shape(tmp_path / "net.onnx")
    backend = load_backend(ModelSpec(name="m", artifact="net.onnx"), tmp_path)
    assert backend.outputs[0].name == "y"


def test_bytes_input_is_fed_as_text(tmp_path: Path) -> None:
    onnx_models.string_lookup(tmp_path / "model.onnx")
    backend = load_backend(ModelSpec(name="lookup"), tmp_path)
    assert _specs(backend.inputs) == [("text", "BYTES", [-1])]
    out = backend.run({"text": np.array([b"tea", b"nope"], dtype=np.object_)})
    assert out["code"].tolist() == [2, -1]


def test_bytes_input_is_decoded_as_utf8(tmp_path: Path) -> None:
    onnx_models.string_lookup(tmp_path / "model.onnx")
    backend = load_backend(ModelSpec(name="lookup"), tmp_path)
    text = np.array(["café".encode(), b"tea"], dtype=np.object_)
    assert backend.run({"text": text})["code"].tolist() == [1, 2]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_backend(ModelSpec(name="gone"), tmp_path)
    message = caught.value.message
    assert "model 'gone'" in message
    assert str(tmp_path / "model.onnx") in message
    assert "does not exist; put the ONNX file there" in message


def test_garbage_file(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"\x00\x01 definitely not protobuf \xff" * 10)
    with pytest.raises(SpecError) as caught:
        load_backend(ModelSpec(name="junk"), tmp_path)
    assert f"{tmp_path / 'model.onnx'} could not be loaded by onnxruntime" in caught.value.message


def test_unknown_backend(tmp_path: Path) -> None:
    spec = ModelSpec(name="tf").model_copy(update={"backend": "tensorflow"})
    with pytest.raises(SpecError) as caught:
        load_backend(spec, tmp_path)
    assert caught.value.message == (
        "model 'tf': unknown backend 'tensorflow'; use one of onnx, python"
    )


def test_cuda_without_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        onnx_backend.ort, "get_available_providers", lambda: ["CPUExecutionProvider"]
    )
    onnx_models.affine(tmp_path / "model.onnx")
    spec = ModelSpec(name="m", runtime=RuntimeSpec(device="cuda"))
    with pytest.raises(SpecError) as caught:
        load_backend(spec, tmp_path)
    message = caught.value.message
    assert "runtime.device is 'cuda' but this onnxruntime has no CUDA provider" in message
    assert "install onnxruntime-gpu or set device: cpu" in message


def test_providers_for_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        onnx_backend.ort,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert onnx_backend.providers_for("cpu") == ["CPUExecutionProvider"]
    assert onnx_backend.providers_for("cuda") == [
        ("CUDAExecutionProvider", {"device_id": 0}),
        "CPUExecutionProvider",
    ]
    assert onnx_backend.providers_for("cuda:1")[0] == ("CUDAExecutionProvider", {"device_id": 1})


def test_unknown_device() -> None:
    with pytest.raises(
        SpecError, match=r"runtime\.device 'tpu' is not known; use cpu, cuda, cuda:N or auto"
    ):
        onnx_backend.providers_for("tpu")
