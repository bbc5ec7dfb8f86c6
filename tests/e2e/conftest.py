"""End-to-end fixtures: a real `inferd serve` subprocess on a free loopback port."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from inferd.testing import read_record
from tests.support import onnx_models

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "model_repository"
SAMPLES = ROOT / "examples" / "digits" / "samples"

SLOW_MODEL = '''
from pathlib import Path

from inferd.testing import FakeBackend


def crash_on_negative(inputs):
    if (inputs["x"] < 0).any():
        return RuntimeError("negative input: this model crashes on purpose")
    return None


def Model():
    """Sleeps the largest x seconds, records every batch it ran, and crashes on x < 0."""
    return FakeBackend(
        compute=lambda inputs: {"y": inputs["x"] * 2},
        latency_s=lambda inputs: float(inputs["x"].max()),
        fail=crash_on_negative,
        record_to=Path(__file__).with_name("calls.jsonl"),
    )
'''

SLOW_SPEC = """
name: slow
task: tensor
backend: python
inputs: [{name: x, datatype: FP32, shape: [1]}]
outputs: [{name: y, datatype: FP32, shape: [1]}]
batching: {max_batch_size: 4, max_delay_ms: 0, max_queue: 4}
"""


def slow_ran(repo: Path) -> list[float]:
    """Every x the `slow` model of `build_repo(slow=True)` has started on, in order."""
    batches = read_record(repo / "slow" / "1" / "calls.jsonl")
    return [float(x) for batch in batches for x in batch["x"].reshape(-1)]


def v2_file_request(name: str, data: bytes) -> dict[str, object]:
    """A V2 JSON body carrying one file: binary bytes cannot be JSON strings, so they go as
    base64 marked with MLServer's content type."""
    encoded = base64.b64encode(data).decode()
    tensor = {"name": name, "datatype": "BYTES", "shape": [1, 1], "data": [encoded]}
    return {"inputs": [{**tensor, "parameters": {"content_type": "base64"}}]}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    repo: Path
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)  # type: ignore[arg-type]

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")


def start_server(repo: Path, log: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    if "--data-dir" not in args and "--store" not in args:  # never the working directory's
        args = ("--data-dir", str(log.parent / f"data-{port}"), *args)
    command = [sys.executable, "-m", "inferd.cli", "serve", str(repo), "--port", str(port), *args]
    out = log.open("wb")
    process = subprocess.Popen(
        command,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"inferd serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(url + "/v2/health/live", timeout=1.0).status_code == 200:
                return Server(url=url, repo=repo, process=process, log=log)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_server(process)
    raise RuntimeError(f"inferd serve did not come up in 60 s:\n{log.read_text()}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


TINY_GENERATOR_SPEC = """
name: tiny
task: generation
backend: torch
generation: {max_context: 64, max_sequences: 4, max_waiting: 8, default_max_tokens: 8}
"""


def start_tiny_generator(root: Path) -> Server:
    """`inferd serve` over one random tiny GPT-2 named `tiny` (tests/support/tiny_lm.py)."""
    from tests.support.tiny_lm import gpt2_folder

    gpt2_folder(root / "repo" / "tiny" / "1", positions=64)
    (root / "repo" / "tiny" / "model.yaml").write_text(TINY_GENERATOR_SPEC)
    return start_server(root / "repo", root / "server.log")


def build_repo(root: Path, *, slow: bool = False) -> Path:
    """The bundled examples plus bare ONNX tensor models (and, if asked, a python model)."""
    repo = root / "repo"
    # The 86 MiB teacher is built on demand (test_teacher_model.py builds its own copy).
    shutil.copytree(BUNDLED, repo, ignore=shutil.ignore_patterns("support-intent-minilm"))
    onnx_models.affine(repo / "affine" / "1" / "model.onnx")
    onnx_models.two_in_two_out(repo / "pair" / "1" / "model.onnx")
    onnx_models.fixed_shape(repo / "fixed" / "1" / "model.onnx")
    onnx_models.stateful_scaled(repo / "stateful" / "1" / "model.onnx")
    if slow:
        (repo / "slow" / "1").mkdir(parents=True)
        (repo / "slow" / "model.yaml").write_text(SLOW_SPEC)
        (repo / "slow" / "1" / "model.py").write_text(SLOW_MODEL)
    return repo


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One shared server over the bundled models and the tensor models."""
    root = tmp_path_factory.mktemp("e2e")
    running = start_server(build_repo(root), root / "server.log")
    try:
        yield running
    finally:
        stop_server(running.process)


@pytest.fixture(scope="session")
def fault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the trusted python `slow` model, a small body limit, for fault tests."""
    root = tmp_path_factory.mktemp("faults")
    repo = build_repo(root, slow=True)
    running = start_server(repo, root / "server.log", "--trust-code", "--max-body-size", "64KiB")
    try:
        yield running
    finally:
        stop_server(running.process)
