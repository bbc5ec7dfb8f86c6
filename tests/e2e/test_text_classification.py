"""Text classification end to end: support-intent over V1 (a sentence) and V2 (BYTES)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as triton

from tests.e2e.conftest import BUNDLED, Server
from tests.e2e.test_cli import inferd
from tests.support.burst import alone_and_in_a_burst

EXAMPLES = [
    json.loads(line)
    for line in (BUNDLED / "support-intent" / "eval" / "test.jsonl").read_text().splitlines()
]
LABELS = (BUNDLED / "support-intent" / "labels.txt").read_text().split()


def test_a_sentence_gets_an_intent(server: Server) -> None:
    with server.client() as http:
        reply = http.post(
            "/v1/models/support-intent:predict",
            json={"instances": ["I was charged twice for my subscription this month"]},
        )
    assert reply.status_code == 200, reply.text
    prediction = reply.json()["predictions"][0]
    assert prediction["label"] in LABELS
    assert len(prediction["top_k"]) == 3
    assert "parameters" not in prediction  # nothing was truncated


def test_bare_string_and_keyed_text_agree(server: Server) -> None:
    text = EXAMPLES[0]["instance"]
    with server.client() as http:
        bare = http.post("/v1/models/support-intent:predict", json={"instances": [text]})
        keyed = http.post("/v1/models/support-intent:predict", json={"instances": [{"text": text}]})
    assert bare.json() == keyed.json()


def test_empty_text_is_400_and_long_text_is_truncated_with_a_note(server: Server) -> None:
    long_text = " ".join(["please help me with my refund"] * 40)
    with server.client() as http:
        empty = http.post("/v1/models/support-intent:predict", json={"instances": ["  "]})
        long = http.post("/v1/models/support-intent:predict", json={"instances": [long_text]})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    assert long.status_code == 200, long.text
    assert long.json()["predictions"][0]["parameters"] == {"truncated_to_tokens": 64}


@pytest.mark.parametrize("binary", [True, False])
def test_v2_bytes_with_tritonclient(server: Server, binary: bool) -> None:
    client = triton.InferenceServerClient(url=server.host_port)
    texts = [e["instance"] for e in EXAMPLES[:4]]
    tensor = triton.InferInput("text", [4, 1], "BYTES")
    tensor.set_data_from_numpy(
        np.array([[t.encode()] for t in texts], dtype=np.object_), binary_data=binary
    )
    result = client.infer("support-intent", [tensor])
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")[:, 0]]
    with server.client() as http:
        v1 = http.post("/v1/models/support-intent:predict", json={"instances": texts}).json()
    assert labels == [p["label"] for p in v1["predictions"]]


def test_batched_answers_equal_single_answers(server: Server) -> None:
    texts = [e["instance"] for e in EXAMPLES[:32]]
    path = "/v1/models/support-intent:predict"
    for alone, batched in alone_and_in_a_burst(server.host_port, path, texts):
        assert batched["label"] == alone["label"]
        assert batched["score"] == pytest.approx(alone["score"], abs=1e-5)


def test_held_out_accuracy_reaches_90_percent() -> None:
    done = inferd("evaluate", "support-intent", "-r", str(BUNDLED))
    assert done.returncode == 0, done.stdout + done.stderr
    assert float(done.stdout.split("accuracy = ")[1].split()[0]) >= 0.90
