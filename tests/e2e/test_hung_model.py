"""A model that hangs: its requests get 504 past `runtime.batch_timeout_s`, the model is
marked not ready and restarted in the background, and SIGTERM still ends the server within
`--drain-seconds` with a batch stuck."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import SLOW_MODEL, SLOW_SPEC, Server, start_server, stop_server


def _hanging_repo(root: Path) -> Path:
    """The `slow` model (sleeps x seconds) with a 1 s batch limit and two workers."""
    repo = root / "repo"
    (repo / "slow" / "1").mkdir(parents=True)
    spec = SLOW_SPEC + "runtime: {batch_timeout_s: 1, instances: 2}\n"
    (repo / "slow" / "model.yaml").write_text(spec)
    (repo / "slow" / "1" / "model.py").write_text(SLOW_MODEL)
    return repo


def _infer(server: Server, x: float, timeout: float = 30) -> httpx.Response:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [x]}]}
    return httpx.post(f"{server.url}/v2/models/slow/infer", json=body, timeout=timeout)


def test_a_hung_batch_is_a_504_and_the_model_comes_back(tmp_path: Path) -> None:
    server = start_server(_hanging_repo(tmp_path), tmp_path / "server.log", "--trust-code")
    try:
        assert _infer(server, 0.01).status_code == 200
        started = time.monotonic()
        hung = _infer(server, 600)  # ten minutes: hung, as far as anyone can tell
        assert hung.status_code == 504, hung.text
        assert time.monotonic() - started < 10
        assert "past its limit of 1 s (runtime.batch_timeout_s)" in hung.json()["error"]
        for _ in range(100):  # restarted in the background
            if httpx.get(f"{server.url}/v2/models/slow/ready", timeout=5).status_code == 200:
                break
            time.sleep(0.1)
        again = _infer(server, 0.01)
        assert again.status_code == 200, again.text
        assert again.json()["outputs"][0]["data"] == pytest.approx([0.02])
        log = server.log.read_text()
        assert "the model is hung" in log and "restarted after a hung batch" in log
    finally:
        stop_server(server.process)


def test_sigterm_exits_within_drain_seconds_with_a_batch_stuck(tmp_path: Path) -> None:
    repo = _hanging_repo(tmp_path)
    (repo / "slow" / "model.yaml").write_text(SLOW_SPEC)  # the default limit: 30 s
    server = start_server(repo, tmp_path / "server.log", "--trust-code", "--drain-seconds", "2")
    answers: list[httpx.Response] = []
    caller = threading.Thread(target=lambda: answers.append(_infer(server, 600)))
    try:
        caller.start()
        time.sleep(0.5)
        stopped_at = time.monotonic()
        os.killpg(server.process.pid, signal.SIGTERM)
        assert server.process.wait(15) == 0
        assert time.monotonic() - stopped_at < 8  # 2 s to drain, then out
        caller.join(10)
        [answer] = answers  # told, not left with a closed connection
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
        assert "stopped before this request finished" in answer.json()["error"]
        assert "drain's time (--drain-seconds) ran out" in server.log.read_text()
    finally:
        stop_server(server.process)
