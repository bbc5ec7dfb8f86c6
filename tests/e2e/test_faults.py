"""Overload, deadlines, disconnects and model crashes against a real server.

The trusted python model `slow` sleeps for x seconds, logs every x it ran, and crashes on a
negative x; its queue holds 4 items and its batches 4.
"""

from __future__ import annotations

import asyncio
import socket
import time

import httpx

from tests.e2e.conftest import Server, slow_ran


def _slow(x: float, **extra: object) -> dict[str, object]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [x]}], **extra}


def test_model_crash_is_500_with_request_id_and_server_lives(fault_server: Server) -> None:
    with fault_server.client() as http:
        reply = http.post("/v2/models/slow/infer", json=_slow(-1.0))
        assert reply.status_code == 500
        request_id = reply.headers["x-request-id"]
        assert request_id in reply.json()["error"]
        assert "negative input" in reply.json()["error"]
        ok = http.post("/v2/models/slow/infer", json=_slow(0.0))
        assert ok.status_code == 200 and ok.json()["outputs"][0]["data"] == [0.0]
    log = fault_server.log.read_text()
    assert request_id in log and "Traceback" in log


async def test_full_queue_is_429_with_retry_after(fault_server: Server) -> None:
    async with httpx.AsyncClient(base_url=fault_server.url, timeout=30) as http:
        # A batch runs for 1 s while 4 more items fill the queue; the rest must be refused.
        replies = await asyncio.gather(
            *(http.post("/v2/models/slow/infer", json=_slow(1.0)) for _ in range(16))
        )
    statuses = sorted(r.status_code for r in replies)
    assert statuses.count(200) >= 4  # at least a full queue is served
    refused = [r for r in replies if r.status_code == 429]
    assert refused, statuses
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert all("queue" in r.json()["error"] for r in refused)


async def test_a_request_that_cannot_meet_its_deadline_is_answered_by_it(
    fault_server: Server,
) -> None:
    """Behind a 1.5 s batch, a request with a 200 ms deadline is refused at once (429, when
    the server has timed a batch of this model and knows the queue will outlast it) or when
    its deadline passes in the queue (504, before it has); either way by its deadline, and
    its item never runs."""
    async with httpx.AsyncClient(base_url=fault_server.url, timeout=30) as http:
        blocker = asyncio.create_task(http.post("/v2/models/slow/infer", json=_slow(1.5)))
        await asyncio.sleep(0.3)  # the blocker now holds the only worker
        started = time.monotonic()
        late = await http.post(
            "/v2/models/slow/infer", json=_slow(0.25, parameters={"timeout_ms": 200})
        )
        waited = time.monotonic() - started
        header = await http.post(
            "/v2/models/slow/infer", json=_slow(0.5), headers={"inferd-timeout-ms": "100"}
        )
        assert (await blocker).status_code == 200
    for refused in (late, header):
        assert refused.status_code in (429, 504), refused.text
        assert "deadline" in refused.json()["error"]
        if refused.status_code == 429:
            assert int(refused.headers["retry-after"]) >= 1
    assert waited < 1.4  # answered by its deadline, not after the blocker finished
    assert 0.25 not in slow_ran(fault_server.repo)  # the refused item never ran


async def test_disconnected_client_has_its_queued_work_dropped(fault_server: Server) -> None:
    async with httpx.AsyncClient(base_url=fault_server.url, timeout=30) as http:
        blocker = asyncio.create_task(http.post("/v2/models/slow/infer", json=_slow(1.25)))
        await asyncio.sleep(0.3)
        # A raw client that sends its request and hangs up while the item is queued.
        host, port = fault_server.host_port.split(":")
        body = httpx.Request("POST", "/", json=_slow(0.125)).read()
        head = (
            f"POST /v2/models/slow/infer HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(head + body)
            await asyncio.sleep(0.2)
        assert (await blocker).status_code == 200
        await asyncio.sleep(0.3)
        after = await http.get("/metrics")
    assert 0.125 not in slow_ran(fault_server.repo)
    assert 'status="499"' in after.text
    assert "Exception in ASGI application" not in fault_server.log.read_text()
