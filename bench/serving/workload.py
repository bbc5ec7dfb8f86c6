"""What the serving benchmark serves and sends: its model repository (the digits example, the
compute-bound CNN with and without batching, the trivial model), one request body per target,
the answers each must give, and the digits pipeline measured in-process, without HTTP."""

from __future__ import annotations

import base64
import json
import shutil
import statistics
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import ROOT, BenchError
from bench.harness.models import (
    COMPUTE_SHAPE,
    build_compute_model,
    build_trivial_model,
    write_model_yaml,
)
from bench.harness.servers import Server, http
from bench.harness.wrk import Body

DIGITS_DIR = ROOT / "model_repository" / "digits"
DIGITS_SAMPLE = ROOT / "examples" / "digits" / "samples" / "seven.png"
DIGITS = "/v2/models/digits/infer"
TRIVIAL = "/v2/models/trivial/infer"
COMPUTE = "/v2/models/compute/infer"
NOBATCH = "/v2/models/compute_nobatch/infer"


def check_example() -> None:
    if not DIGITS_DIR.joinpath("model.yaml").exists() or not DIGITS_SAMPLE.exists():
        raise BenchError(
            f"the digits example is missing ({DIGITS_DIR}, {DIGITS_SAMPLE}); "
            "build it with examples/digits/train.py"
        )


def build_repository(repo: Path, threads: int) -> Path:
    """digits, compute (batching up to 32), compute_nobatch and trivial; returns the compute
    model's ONNX file, which raw ORT runs too."""
    shutil.copytree(DIGITS_DIR, repo / "digits")
    model_path = build_compute_model(repo / "compute" / "1" / "model.onnx")
    write_model_yaml(repo / "compute", 32, threads)
    shutil.copytree(repo / "compute" / "1", repo / "compute_nobatch" / "1")
    write_model_yaml(repo / "compute_nobatch", 1, threads)
    build_trivial_model(repo / "trivial" / "1" / "model.onnx")  # no model.yaml: plain tensor
    return model_path


def binary_request(inputs: list[tuple[str, str, list[int], bytes]]) -> tuple[bytes, int]:
    docs = [
        {"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(raw)}}
        for n, d, s, raw in inputs
    ]
    header = json.dumps({"inputs": docs}, separators=(",", ":")).encode()
    return header + b"".join(raw for *_, raw in inputs), len(header)


def make_bodies(workdir: Path, png: bytes, compute_x: np.ndarray) -> dict[str, Body]:
    bodies: dict[str, Body] = {}

    def add(name: str, data: bytes, headers: dict[str, str]) -> None:
        path = workdir / f"{name}.body"
        path.write_bytes(data)
        bodies[name] = Body(name, str(path), data, headers)

    digits_json = {
        "inputs": [
            {
                "name": "image",
                "datatype": "BYTES",
                "shape": [1],
                "parameters": {"content_type": "base64"},
                "data": [base64.b64encode(png).decode("ascii")],
            }
        ]
    }
    add(
        "digits_json",
        json.dumps(digits_json, separators=(",", ":")).encode(),
        {"Content-Type": "application/json"},
    )
    element = struct.pack("<I", len(png)) + png  # a BYTES element: 4-byte LE length + bytes
    data, header_len = binary_request([("image", "BYTES", [1], element)])
    add(
        "digits_binary",
        data,
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(header_len),
        },
    )
    data, header_len = binary_request([("x", "FP32", [1, 4], np.arange(4, dtype="<f4").tobytes())])
    add(
        "trivial_binary",
        data,
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(header_len),
        },
    )
    raw = np.ascontiguousarray(compute_x, dtype="<f4").tobytes()
    data, header_len = binary_request([("x", "FP32", [1, *COMPUTE_SHAPE], raw)])
    add(
        "compute_binary",
        data,
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(header_len),
        },
    )
    return bodies


def check_infer(server: Server, path: str, body: Body) -> dict[str, Any]:
    status, _, reply = http("POST", server.url + path, body.data, body.headers)
    if status != 200:
        raise BenchError(f"{server.name} {path} answered {status}: {reply[:500]!r}")
    return dict(json.loads(reply))


def output(reply: dict[str, Any], name: str) -> Any:
    for tensor in reply.get("outputs", []):
        if tensor["name"] == name:
            return tensor["data"]
    raise BenchError(f"reply has no output {name!r}: {reply}")


def check_answers(inferd: Server, bodies: dict[str, Body], expected_logits: Any) -> None:
    """Every model answers right before any load: digits reads 7, trivial adds 1, and both
    compute models give raw ORT's logits."""
    for name in ("digits_json", "digits_binary"):
        label = output(check_infer(inferd, DIGITS, bodies[name]), "label")
        if label != ["7"]:
            raise BenchError(f"digits answered {label} for seven.png ({name}); expected 7")
    if output(check_infer(inferd, TRIVIAL, bodies["trivial_binary"]), "y") != [1, 2, 3, 4]:
        raise BenchError("the trivial model did not answer x + 1")
    for name in ("compute", "compute_nobatch"):
        reply = check_infer(inferd, f"/v2/models/{name}/infer", bodies["compute_binary"])
        served = np.asarray(output(reply, "logits"), dtype=np.float32).reshape(1, -1)
        if not np.allclose(served, expected_logits, rtol=1e-3, atol=1e-4):
            raise BenchError(f"{name} served logits differ from raw ORT's")


def digits_pipeline(model_dir: Path, body: bytes, seconds: float) -> dict[str, float]:
    """inferd's own digits pipeline in-process, no HTTP: decode a V2 JSON body, then
    run_batch (preprocess, ORT, postprocess) in this thread. The ceiling any server running
    this pipeline on one core can reach, and the latency it cannot go under."""
    from inferd.codecs import decode_infer_request
    from inferd.repository import load_model

    entry = load_model(model_dir)
    if entry.latest is None:
        raise BenchError(f"digits did not load in-process: {entry.errors}")
    pipeline = entry.latest.pipeline
    out: dict[str, float] = {}
    try:
        for batch in (1, 32):

            def once(batch: int = batch) -> None:
                items = [
                    pipeline.items_from_tensors(decode_infer_request(body).inputs)[0]
                    for _ in range(batch)
                ]
                pipeline.run_batch(items)

            once()
            times: list[float] = []
            end = time.perf_counter() + seconds / 2
            while time.perf_counter() < end or len(times) < 5:
                t0 = time.perf_counter()
                once()
                times.append(time.perf_counter() - t0)
            out[f"batch{batch}_call_p50_ms"] = statistics.median(times) * 1000
            out[f"batch{batch}_items_per_s"] = batch * len(times) / sum(times)
    finally:
        entry.latest.pipeline.backend.close()
    return out
