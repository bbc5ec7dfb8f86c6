"""Decide and act end to end: breast-cancer's rule posts likely-malignant cases to a real
webhook receiver on loopback, durably (a SIGKILLed server loses no action), with the
prediction log, feedback and `inferd actions` on the same store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import BUNDLED, Server, free_port, start_server, stop_server
from tests.support.webhook import Received, Receiver, Reply

MODEL = "breast-cancer"
REVIEW = "/review"


def _request_ids(received: list[Received]) -> set[str]:
    return {r.body["request_id"] for r in received}


def _cases() -> dict[str, list[dict[str, Any]]]:
    """Held-out cases by their true label."""
    cases: dict[str, list[dict[str, Any]]] = {"malignant": [], "benign": []}
    for line in (BUNDLED / MODEL / "eval" / "test.jsonl").read_text().splitlines():
        example = json.loads(line)
        cases[example["target"]].append(example["instance"])
    return cases


CASES = _cases()


def _repo(root: Path) -> Path:
    repo = root / "repo"
    shutil.copytree(BUNDLED / MODEL, repo / MODEL)
    return repo


def _predict(server: Server, instance: dict[str, Any], request_id: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/models/{MODEL}:predict",
        json={"instances": [instance]},
        headers={"x-request-id": request_id},
        timeout=30,
    )


def _actions_cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "inferd.cli", "actions", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _malignant_decided(server: Server) -> list[dict[str, Any]]:
    """Held-out malignant cases the model sends to review (nearly all of them)."""
    chosen = []
    for number, instance in enumerate(CASES["malignant"]):
        reply = _predict(server, instance, f"probe-{number}")
        if reply.json()["predictions"][0]["decisions"] == ["specialist_review"]:
            chosen.append(instance)
    return chosen


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    started.start()
    yield started
    started.stop()


@pytest.fixture
def served(tmp_path: Path, receiver: Receiver) -> Iterator[tuple[Server, Path]]:
    data_dir = tmp_path / "data"
    server = start_server(
        _repo(tmp_path),
        tmp_path / "serve.log",
        "--data-dir",
        str(data_dir),
        "--allow-env",
        "REVIEW_WEBHOOK_URL",
        env={"REVIEW_WEBHOOK_URL": receiver.url(REVIEW)},
    )
    yield server, data_dir
    stop_server(server.process)


def test_a_malignant_case_is_decided_posted_logged_and_given_feedback(
    served: tuple[Server, Path], receiver: Receiver
) -> None:
    server, data_dir = served
    malignant = next(
        c
        for c in CASES["malignant"]
        if _predict(server, c, "warm").json()["predictions"][0]["decisions"]
    )
    reply = _predict(server, malignant, "case-1")
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-request-id"] == "case-1"
    [prediction] = reply.json()["predictions"]
    assert prediction["label"] == "malignant" and prediction["decisions"] == ["specialist_review"]

    assert receiver.wait_for(REVIEW, lambda got: "case-1" in _request_ids(got))
    delivery = next(d for d in receiver.at(REVIEW) if d.body["request_id"] == "case-1")
    assert delivery.headers["content-type"] == "application/json"
    assert len(delivery.headers["idempotency-key"]) >= 16
    body = delivery.body
    assert (body["model"], body["version"], body["decision"]) == (MODEL, "1", "specialist_review")
    assert body["prediction"]["label"] == "malignant"

    benign = _predict(server, CASES["benign"][0], "case-2").json()["predictions"][0]
    assert benign["decisions"] == [] and benign["label"] == "benign"

    # A generated request id is returned too, on every answer (errors included).
    generated = httpx.post(
        f"{server.url}/v1/models/{MODEL}:predict", json={"instances": [CASES["benign"][0]]}
    )
    assert generated.headers["x-request-id"]
    missing = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": [{}]})
    assert missing.status_code == 400 and missing.headers["x-request-id"]
    bad_id = _predict(server, malignant, "no spaces allowed")
    assert bad_id.status_code == 400 and "X-Request-Id" in bad_id.json()["error"]

    # Feedback: attached by request id; unknown ids and a wrong type refused, naming them.
    feedback = f"{server.url}/v1/feedback"
    one = httpx.post(feedback, json={"request_id": "case-1", "truth": "malignant"})
    assert one.json() == {"recorded": 1}
    bulk = httpx.post(
        feedback,
        json={
            "feedback": [
                {"request_id": "case-2", "item": 0, "truth": "benign"},
                {"request_id": "never-seen", "truth": "benign"},
            ]
        },
    )
    assert bulk.status_code == 404
    assert "feedback[1]: request id 'never-seen' item 0" in bulk.json()["error"]
    assert "nothing was recorded" in bulk.json()["error"]
    wrong = httpx.post(feedback, json={"request_id": "case-1", "truth": 1})
    assert wrong.status_code == 400 and "is a label" in wrong.json()["error"]
    unknown_label = httpx.post(feedback, json={"request_id": "case-1", "truth": "maybe"})
    assert unknown_label.status_code == 400 and "malignant, benign" in unknown_label.json()["error"]

    # V2 carries the decisions in its parameters and the request id as `id`.
    names = list(malignant)
    v2 = httpx.post(
        f"{server.url}/v2/models/{MODEL}/infer",
        json={
            "id": "v2-case",
            "inputs": [
                {"name": n, "datatype": "FP32", "shape": [1, 1], "data": [malignant[n]]}
                for n in names
            ],
        },
    )
    assert v2.status_code == 200, v2.text
    assert v2.json()["id"] == "v2-case"
    assert v2.json()["parameters"]["decisions"] == "specialist_review"

    listing = _actions_cli(data_dir, "--model", MODEL)
    assert "specialist_review" in listing and "delivered" in listing

    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'inferd_decisions_total{decision="specialist_review",model="breast-cancer"}' in metrics
    assert (
        'inferd_actions_total{kind="webhook",model="breast-cancer",outcome="delivered"}' in metrics
    )
    assert "inferd_actions_in_outbox" in metrics


def test_a_request_id_is_a_retry_of_the_same_request_and_a_409_for_another(
    served: tuple[Server, Path], receiver: Receiver
) -> None:
    server, data_dir = served
    first, second = _malignant_decided(server)[:2]
    assert _predict(server, first, "reused-id").status_code == 200
    retried = _predict(server, first, "reused-id")  # a client retrying after a timeout
    assert retried.status_code == 200
    other = _predict(server, second, "reused-id")
    assert other.status_code == 409, other.text
    assert "request id 'reused-id' was already used for another request" in other.json()["error"]
    assert receiver.wait_for(REVIEW, lambda got: "reused-id" in _request_ids(got))
    outbox = _actions_cli(data_dir, "--model", MODEL)
    assert outbox.count("reused-id") == 2  # its webhook and log actions, once each
    posted = [d for d in receiver.at(REVIEW) if d.body["request_id"] == "reused-id"]
    assert [d.body["prediction"]["label"] for d in posted] == ["malignant"]
    assert _predict(server, second, "fresh-id").status_code == 200  # still serving


def test_a_webhook_that_is_down_neither_slows_answers_nor_loses_actions(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet: every delivery is refused
    data_dir = tmp_path / "data"
    server = start_server(
        _repo(tmp_path),
        tmp_path / "serve.log",
        "--data-dir",
        str(data_dir),
        "--allow-env",
        "REVIEW_WEBHOOK_URL",
        env={"REVIEW_WEBHOOK_URL": f"http://127.0.0.1:{port}/review"},
    )
    receiver: Receiver | None = None
    try:
        decided = _malignant_decided(server)[:5]
        for number, instance in enumerate(decided):
            reply = _predict(server, instance, f"down-{number}")
            assert reply.status_code == 200 and reply.json()["predictions"][0]["decisions"]
        listing = _actions_cli(data_dir, "--state", "pending")
        assert "pending" in listing and "down-0" in listing
        receiver = Receiver(port)
        receiver.start()
        wanted = {f"down-{n}" for n in range(len(decided))}
        assert receiver.wait_for(REVIEW, lambda got: wanted <= _request_ids(got), 90)
    finally:
        stop_server(server.process)
        if receiver is not None:
            receiver.stop()


def test_sigkill_at_any_moment_loses_no_action(tmp_path: Path, receiver: Receiver) -> None:
    """Answers that said "specialist_review" before a kill -9 all reach the receiver once
    the server is started again on the same store (duplicates allowed: at least once)."""
    repo, data_dir = _repo(tmp_path), tmp_path / "data"
    env = {"REVIEW_WEBHOOK_URL": receiver.url(REVIEW), "INFERD_ALLOW_ENV": "REVIEW_WEBHOOK_URL"}
    # Slow answers: the outbox has a backlog when the kill lands.
    receiver.reply(REVIEW, then=Reply(hang_s=0.05))
    server = start_server(repo, tmp_path / "first.log", "--data-dir", str(data_dir), env=env)
    decided = _malignant_decided(server)
    assert len(decided) >= 20
    answered: list[str] = []
    lock = threading.Lock()

    def send(worker: int) -> None:
        for number in range(200):
            request_id = f"kill-{worker}-{number}"
            try:
                reply = _predict(server, decided[number % len(decided)], request_id)
            except httpx.TransportError:
                return  # the server is gone
            if reply.status_code == 200:
                with lock:
                    answered.append(request_id)

    workers = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill while requests and deliveries are in flight
        with lock:
            if len(answered) >= 60:
                break
        time.sleep(0.01)
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    for worker in workers:
        worker.join(timeout=30)
    delivered_before = _request_ids(receiver.at(REVIEW))
    assert set(answered) - delivered_before, "the kill came after every delivery; no backlog"

    receiver.reply(REVIEW, then=Reply())
    again = start_server(repo, tmp_path / "second.log", "--data-dir", str(data_dir), env=env)
    try:
        everything = set(answered)
        assert receiver.wait_for(REVIEW, lambda got: everything <= _request_ids(got), 120), (
            f"lost: {sorted(everything - _request_ids(receiver.at(REVIEW)))}"
        )
        got = receiver.at(REVIEW)
        # One key per action, however often it was delivered.
        assert len({d.key for d in got}) == len(_request_ids(got))
    finally:
        stop_server(again.process)


def test_a_rule_with_a_typo_fails_validation_with_its_position(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    spec = repo / MODEL / "model.yaml"
    spec.write_text(
        spec.read_text().replace('probability("malignant")', 'probability("malignant" >')
    )
    done = subprocess.run(
        [sys.executable, "-m", "inferd.cli", "validate", str(repo)],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "REVIEW_WEBHOOK_URL": "http://127.0.0.1:9/x",
            "INFERD_ALLOW_ENV": "REVIEW_WEBHOOK_URL",
        },
    )
    assert done.returncode != 0
    assert "decide[0] (specialist_review).when: column" in done.stdout + done.stderr
