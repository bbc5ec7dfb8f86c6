"""The two models every peer serves and the requests every peer gets.

- `tiny`: y = x + 1 on FP32[1, 4] (bench/serve.py's trivial model). It costs nothing, so a
  peer's req/s on it is its per-request serving cost: HTTP, JSON, batching, process hops.
- `cnn`: x FP32[N, 1, 28, 28] → logits[N, 10]: the structure of bench/serve.py's compute
  model (two 3x3 Conv+Relu, MaxPool, Gemm+Relu, Gemm) on a 28x28 one-channel image, widened
  (48/96 channels) until one item costs over 2 ms on one ORT thread here (2.2-2.9 ms
  measured). Its first Gemm (38 MB of weights) is memory-bound at batch 1, which is what
  batching amortizes (~0.7 ms per item at batch 32).

Requests are Open Inference Protocol V2 JSON bodies, one per line of a JSONL samples file;
values are rounded to 4 decimals, so the cnn body is ~5.5 KB like an MNIST image's.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import BenchError
from bench.harness.models import build_compute_model, build_trivial_model
from bench.harness.raw_ort import ort_session

MODELS = ("tiny", "cnn")
CNN_SHAPE = (1, 28, 28)
CNN_CHANNELS = (48, 96)
CNN_HIDDEN = 512
MIN_CNN_ITEM_MS = 2.0
SAMPLES_PER_MODEL = 16


@dataclass
class Workload:
    """One model: its ONNX file, its samples file and the answer raw ORT gives to sample 0."""

    name: str
    onnx: Path
    input: str
    output: str
    samples: Path
    first_body: bytes
    expected: np.ndarray  # raw ORT's output for the first sample
    item_ms: float  # raw ORT, batch 1, p50, one intra-op thread
    batch32_item_ms: float  # raw ORT, batch 32, p50 per item

    @property
    def route(self) -> str:
        return f"/v2/models/{self.name}/infer"


def build_cnn(path: Path, seed: int = 0) -> Path:
    """x[N,1,28,28] → logits[N,10]; fixed random weights (see the module docstring)."""
    return build_compute_model(
        path, seed, shape=CNN_SHAPE, channels=CNN_CHANNELS, hidden=CNN_HIDDEN, name="peers_cnn"
    )


def v2_body(name: str, x: np.ndarray) -> bytes:
    tensor = {"name": name, "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}
    return json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()


def time_item(session: Any, input_name: str, x: np.ndarray, seconds: float) -> float:
    """p50 seconds of back-to-back session.run calls on x."""
    feed = {input_name: x}
    for _ in range(3):
        session.run(None, feed)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build(name: str, folder: Path, threads: int, seed: int = 0) -> Workload:
    """Build one model, its samples file and raw ORT's answer and timing for it."""
    rng = np.random.default_rng(seed)
    onnx_path = folder / name / "model.onnx"
    if name == "tiny":
        build_trivial_model(onnx_path)
        item_shape: tuple[int, ...] = (4,)
    elif name == "cnn":
        build_cnn(onnx_path)
        item_shape = CNN_SHAPE
    else:
        raise BenchError(f"unknown model {name!r}; use tiny or cnn")
    session = ort_session(onnx_path, threads)
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    # Rounded in float64, so the JSON holds short decimals ("0.1234"); the model sees their
    # float32 values, as every peer does after parsing.
    values = [np.round(rng.random((1, *item_shape)), 4) for _ in range(SAMPLES_PER_MODEL)]
    bodies = [v2_body(input_name, v) for v in values]
    xs = [v.astype(np.float32) for v in values]
    samples = folder / f"{name}.samples.jsonl"
    samples.write_bytes(b"\n".join(bodies) + b"\n")
    expected = session.run(None, {input_name: xs[0]})[0]
    item_s = time_item(session, input_name, xs[0], 1.5)
    batch32_s = time_item(session, input_name, np.concatenate([*xs, *xs]), 1.5)
    return Workload(
        name=name,
        onnx=onnx_path,
        input=input_name,
        output=output_name,
        samples=samples,
        first_body=bodies[0],
        expected=expected,
        item_ms=item_s * 1000,
        batch32_item_ms=batch32_s * 1000 / 32,
    )


def check_reply(workload: Workload, reply: Any) -> str | None:
    """None when `reply` (a parsed JSON answer to sample 0) carries raw ORT's output, else
    what is wrong. Accepts the V2 response object and, for BentoML, its bare outputs list."""
    outputs = reply.get("outputs") if isinstance(reply, dict) else reply
    if not isinstance(outputs, list):
        return f"no outputs in {str(reply)[:200]}"
    for tensor in outputs:
        if isinstance(tensor, dict) and tensor.get("name") == workload.output:
            got = np.asarray(tensor.get("data"), dtype=np.float32).reshape(-1)
            want = workload.expected.reshape(-1)
            if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-4):
                return f"{workload.output} differs from raw ORT: {got[:4]} vs {want[:4]}"
            return None
    return f"no output named {workload.output!r} in {str(reply)[:200]}"
