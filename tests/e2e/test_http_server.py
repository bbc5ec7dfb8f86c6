"""`inferd serve`'s own HTTP/1.1 server, met the way clients meet it: pipelined requests,
a body over the limit refused before it is sent, and a graceful stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import Server, build_repo, slow_ran, start_server, stop_server
from tests.support.onnx_models import affine_weights


def _infer_body(request_id: str, x: list[float]) -> bytes:
    tensor = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": x}
    return json.dumps({"id": request_id, "inputs": [tensor]}).encode()


def _post(path: str, body: bytes, *, close: bool = False) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "")
    return head.encode() + b"\r\n" + body


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _responses(data: bytes) -> list[tuple[int, bytes]]:
    """Back-to-back Content-Length responses: (status, body) each."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        out.append((int(lines[0].split()[1]), rest[:length]))
        data = rest[length:]
    return out


def test_pipelined_inferences_are_answered_in_order(server: Server) -> None:
    weight, bias = affine_weights()
    inputs = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0], [3.0, 3.0, -3.0, 1.0]]
    raw = b"".join(
        _post("/v2/models/affine/infer", _infer_body(f"p{i}", x), close=i == len(inputs) - 1)
        for i, x in enumerate(inputs)
    )
    host, port = server.host_port.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)  # all three before reading any answer
        answers = _responses(_read_all(sock))
    assert [status for status, _ in answers] == [200, 200, 200]
    for i, (x, (_, body)) in enumerate(zip(inputs, answers, strict=True)):
        reply = json.loads(body)
        assert reply["id"] == f"p{i}"
        expected = np.asarray(x, np.float32) @ weight + bias
        np.testing.assert_allclose(reply["outputs"][0]["data"], expected, rtol=1e-5)


def test_a_body_over_the_limit_is_refused_before_it_is_sent(fault_server: Server) -> None:
    host, port = fault_server.host_port.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        # Declares 10 MB (the limit is 64 KiB) and sends none of it: the answer must come.
        sock.sendall(
            b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: t\r\n"
            b"Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n"
        )
        [(status, body)] = _responses(_read_all(sock))  # and the connection closes
    assert status == 413
    assert "over the server's limit of 65536 bytes" in json.loads(body)["error"]
    with fault_server.client() as http:
        assert http.get("/v2/health/ready").status_code == 200


def test_sigterm_finishes_the_request_in_flight_then_exits(tmp_path: Path) -> None:
    running = start_server(build_repo(tmp_path, slow=True), tmp_path / "server.log", "--trust-code")
    answer: dict[str, object] = {}

    def slow_request() -> None:
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.5]}]}
        with running.client() as http:
            response = http.post("/v2/models/slow/infer", json=body)
            answer["status"] = response.status_code
            answer["y"] = response.json()["outputs"][0]["data"]

    caller = threading.Thread(target=slow_request)
    try:
        caller.start()
        for _ in range(100):  # the model has started on it
            if slow_ran(running.repo):
                break
            threading.Event().wait(0.05)
        os.killpg(running.process.pid, signal.SIGTERM)
        caller.join(15)
        assert answer == {"status": 200, "y": [3.0]}
        assert running.process.wait(15) == 0
        with pytest.raises(httpx.TransportError):  # it no longer listens
            httpx.get(running.url + "/v2/health/live", timeout=1)
    finally:
        stop_server(running.process)


def test_a_taken_port_fails_at_once_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "inferd.cli", "serve", str(tmp_path), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in " ".join(done.stderr.split())
