"""`runtime.device: auto`: the chooser with stand-in devices, and the real path on this CPU."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from inferd.backends import load_backend
from inferd.backends import onnx as onnx_backend
from inferd.backends.auto_device import choose, mismatch, sample_feed
from inferd.spec import ModelSpec, RuntimeSpec, TensorSpec, load_spec

ROOT = Path(__file__).resolve().parents[3]
BUNDLED = ROOT / "model_repository"
CPU = "CPUExecutionProvider"


def device(delay_s: float, shift: float = 0.0, fail: bool = False):  # type: ignore[no-untyped-def]
    """A stand-in device: doubles x, after `delay_s`, off by `shift`, or raising."""

    def run(feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if fail:
            raise RuntimeError("no kernel for this op")
        time.sleep(delay_s)
        return {"y": feed["x"] * 2 + shift, "label": np.argmax(feed["x"], axis=1)}

    return run


FEED = {"x": np.arange(12, dtype=np.float32).reshape(3, 4)}


def test_the_fastest_matching_device_is_kept_and_faster_but_wrong_rejected() -> None:
    choice = choose(
        {
            CPU: device(0.004),
            "FastButWrong": device(0.0, shift=0.5),
            "Fast": device(0.001),
            "Broken": device(0.0, fail=True),
        },
        CPU,
        FEED,
    )
    assert choice.name == "Fast"
    assert set(choice.ms) == {CPU, "Fast"} and choice.ms["Fast"] < choice.ms[CPU]
    assert "differs from the CPU's by up to 0.5" in choice.rejected["FastButWrong"]
    assert "no kernel" in choice.rejected["Broken"]
    assert "chose Fast" in choice.describe() and "not FastButWrong" in choice.describe()


def test_only_wrong_devices_leave_the_cpu() -> None:
    choice = choose({CPU: device(0.002), "Wrong": device(0.0, shift=1.0)}, CPU, FEED)
    assert choice.name == CPU and list(choice.rejected) == ["Wrong"]


def test_a_difference_within_tolerance_matches() -> None:
    choice = choose({CPU: device(0.003), "Close": device(0.0, shift=1e-4)}, CPU, FEED)
    assert choice.name == "Close" and not choice.rejected


def test_mismatch_reasons() -> None:
    ref = {"y": np.array([1.0, 2.0], np.float32), "n": np.array([1, 2])}
    assert mismatch(ref, {"y": np.array([1.0, np.nan], np.float32), "n": ref["n"]})
    assert "shape" in (mismatch(ref, {"y": np.zeros(3, np.float32), "n": ref["n"]}) or "")
    assert (
        mismatch(ref, {"y": ref["y"], "n": np.array([1, 3])}) == "output 'n' differs from the CPU's"
    )
    assert mismatch(ref, {"y": ref["y"]}) == "output 'n' missing"
    assert mismatch(ref, dict(ref)) is None


def test_the_sample_batch_follows_the_inputs() -> None:
    feed = sample_feed(
        [
            TensorSpec(name="ids", datatype="INT64", shape=[-1, -1]),
            TensorSpec(name="image", datatype="FP32", shape=[-1, 1, 16, 16]),
            TensorSpec(name="text", datatype="BYTES", shape=[-1]),
        ]
    )
    assert feed["ids"].shape == (8, 16) and feed["ids"].dtype == np.int64
    assert feed["image"].shape == (8, 1, 16, 16) and feed["image"].dtype == np.float32
    assert feed["text"].shape == (8,)


@pytest.mark.parametrize("model", ["digits", "support-intent"])
def test_auto_on_this_machine_resolves_to_the_cpu(
    model: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec = load_spec(BUNDLED / model)
    assert spec is not None
    auto = spec.model_copy(update={"runtime": RuntimeSpec(threads=1, device="auto")})
    with caplog.at_level(logging.INFO, logger="inferd.backends.onnx"):
        backend = load_backend(auto, BUNDLED / model / "1")
    assert isinstance(backend, onnx_backend.OnnxBackend)
    choice = backend.device_choice
    assert choice is not None
    if onnx_backend.device_providers() == [CPU]:
        assert choice.name == CPU and not choice.rejected
    assert CPU in choice.ms  # the CPU ran the sample batch and was timed
    assert "device auto" in caplog.text and "chose" in caplog.text
    plain = load_backend(spec, BUNDLED / model / "1")
    feed = sample_feed(plain.inputs, seed=3)
    for name, value in plain.run(feed).items():
        np.testing.assert_allclose(backend.run(feed)[name], value, rtol=1e-4, atol=1e-5)


def test_azure_is_never_a_device() -> None:
    assert "AzureExecutionProvider" not in onnx_backend.device_providers()
    assert CPU in onnx_backend.device_providers()


def test_plain_cpu_makes_no_choice() -> None:
    spec = ModelSpec(name="digits", runtime=RuntimeSpec(device="cpu"))
    backend = load_backend(spec, BUNDLED / "digits" / "1")
    assert isinstance(backend, onnx_backend.OnnxBackend) and backend.device_choice is None
