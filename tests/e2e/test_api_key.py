"""`inferd serve --api-key` (or INFERD_API_KEY): every route but health needs the key."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import BUNDLED, Server, start_server, stop_server


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root: Path = tmp_path_factory.mktemp("keyed")
    running = start_server(BUNDLED, root / "server.log", env={"INFERD_API_KEY": "s3cret"})
    try:
        yield running
    finally:
        stop_server(running.process)


def test_health_is_open_and_the_rest_needs_the_key(keyed_server: Server) -> None:
    body = {"instances": [[1.0] * 24]}
    with httpx.Client(base_url=keyed_server.url, timeout=30) as http:
        assert http.get("/v2/health/ready").status_code == 200
        refused = http.post("/v1/models/sunspots:predict", json=body)
        assert refused.status_code == 401
        assert "Authorization: Bearer" in refused.json()["error"]
        wrong = http.post("/v1/models/sunspots:predict", json=body, headers={"X-API-Key": "guess"})
        assert wrong.status_code == 401
        bearer = http.post(
            "/v1/models/sunspots:predict", json=body, headers={"Authorization": "Bearer s3cret"}
        )
        assert bearer.status_code == 200 and len(bearer.json()["predictions"][0]["forecast"]) == 12
        keyed = http.get("/v2/models/digits", headers={"X-API-Key": "s3cret"})
        assert keyed.status_code == 200


def test_a_body_without_the_key_is_refused_before_it_is_sent(keyed_server: Server) -> None:
    """The 401 comes on the headers alone: the server buffers nothing for a stranger."""
    host, port = keyed_server.host_port.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 30000000\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401")
    assert b"connection: close" in head
    assert "API key" in json.loads(body)["error"]
