"""A served cascade: support-intent answers, and the messages it is unsure of go on to the
MiniLM teacher; per item, through V1 (httpx) and V2 (tritonclient), with the metric and
`inferd evaluate` on the cascade."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from tests.e2e.conftest import ROOT, Server, start_server, stop_server
from tests.e2e.test_cli import inferd

SMALL = ROOT / "model_repository" / "support-intent"
MESSAGES = [
    json.loads(line)["instance"]
    for line in (SMALL / "eval" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:40]
]
THRESHOLDS = {"cascade-all": 1.01, "cascade-none": 0.0, "cascade-mid": 0.6}


def _cascade(repo: Path, name: str, threshold: float) -> None:
    folder = repo / name
    (folder / "eval").mkdir(parents=True)
    shutil.copyfile(SMALL / "eval" / "test.jsonl", folder / "eval" / "test.jsonl")
    (folder / "model.yaml").write_text(
        "task: classification\n"
        "cascade: {first: support-intent, then: support-intent-minilm, "
        f'when: "confidence < {threshold}"}}\n'
        "eval: {data: eval/test.jsonl, metric: accuracy}\n",
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def server(teacher_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("cascade")
    repo = root / "repo"
    repo.mkdir()
    shutil.copytree(SMALL, repo / "support-intent")
    (repo / "support-intent-minilm").symlink_to(teacher_model, target_is_directory=True)
    for name, threshold in THRESHOLDS.items():
        _cascade(repo, name, threshold)
    running = start_server(repo, root / "server.log")
    try:
        yield running
    finally:
        stop_server(running.process)


def _predict(server: Server, model: str) -> list[dict[str, Any]]:
    with server.client() as client:
        response = client.post(f"/v1/models/{model}:predict", json={"instances": MESSAGES})
    assert response.status_code == 200, response.text
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def test_each_message_is_answered_by_the_member_its_confidence_picks(server: Server) -> None:
    small, big = _predict(server, "support-intent"), _predict(server, "support-intent-minilm")
    assert [s["label"] for s in small] != [b["label"] for b in big]  # the members differ
    for name, threshold in THRESHOLDS.items():
        answered = _predict(server, name)
        for first, second, answer in zip(small, big, answered, strict=True):
            sent = first["score"] < threshold
            expected = second if sent else first
            assert answer["label"] == expected["label"], name
            assert answer["score"] == pytest.approx(expected["score"], rel=1e-6), name
            assert answer["parameters"] == {"cascade": "then" if sent else "first"}, name
    sent_mid = sum(s["score"] < 0.6 for s in small)
    assert 0 < sent_mid < len(small)
    with server.client() as client:
        metrics = client.get("/metrics").text
    line = 'inferd_cascade_items_total{member="then",model="cascade-mid"} '
    assert f"{line}{float(sent_mid)}" in metrics
    assert 'inferd_cascade_items_total{member="first",model="cascade-all"}' not in metrics


def test_v2_clients_see_the_first_models_tensors_and_the_note(server: Server) -> None:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_model_ready("cascade-mid")
    cascade = client.get_model_metadata("cascade-mid")
    small = client.get_model_metadata("support-intent")
    assert cascade["inputs"] == small["inputs"] and cascade["outputs"] == small["outputs"]
    for model, note in (("cascade-all", "then"), ("cascade-none", "first")):
        text = triton.InferInput("text", [1, 1], "BYTES")
        text.set_data_from_numpy(np.array([[MESSAGES[0].encode()]], dtype=np.object_))
        result = client.infer(model, [text], outputs=[triton.InferRequestedOutput("label")])
        assert result.get_response()["parameters"]["cascade"] == note
        member = "support-intent-minilm" if note == "then" else "support-intent"
        direct = client.infer(member, [text], outputs=[triton.InferRequestedOutput("label")])
        assert result.as_numpy("label").tolist() == direct.as_numpy("label").tolist()


def test_inferd_evaluate_scores_a_cascade(server: Server) -> None:
    scores = {}
    for model in ("support-intent", "support-intent-minilm", "cascade-all", "cascade-none"):
        done = inferd("evaluate", model, "--repo", str(server.repo))
        assert done.returncode == 0, done.stdout + done.stderr
        scores[model] = done.stdout.split("accuracy = ")[1].split()[0]
    assert scores["cascade-all"] == scores["support-intent-minilm"]
    assert scores["cascade-none"] == scores["support-intent"]
