"""`inferd serve --engine ray` on a local single-node Ray cluster: the digits model as a Ray
Serve deployment of two replicas behind inferd's own HTTP API. Both replicas answer (each
names itself in X-Inferd-Replica); one killed in the middle of load costs no acknowledged
request (every request gets 200 or 503 with Retry-After, never a hang, and every 200 is in
the prediction log); the deployment then recovers with a new replica."""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import BUNDLED, SAMPLES, Server, start_server, stop_server

pytest.importorskip("ray.serve", reason="the Ray engine needs pip install 'inferd[ray]'")

REPLICA = "x-inferd-replica"
SEVEN = {"instances": [{"b64": base64.b64encode((SAMPLES / "seven.png").read_bytes()).decode()}]}
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """digits with two fixed replicas and a prediction log; one server for the module (a
    Ray cluster is slow to start on a small machine)."""
    root = tmp_path_factory.mktemp("ray")
    repo = root / "repo"
    shutil.copytree(BUNDLED / "digits", repo / "digits")
    spec = repo / "digits" / "model.yaml"
    spec.write_text(
        spec.read_text()
        + "\nscale: {min_replicas: 2, max_replicas: 2}\nprediction_log: {inputs: none}\n"
    )
    running = start_server(
        repo, root / "server.log", "--engine", "ray", "--monitor-interval", "600"
    )
    try:
        _wait_ready(running, 60)
        yield running
    finally:
        stop_server(running.process)


def _wait_ready(server: Server, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if httpx.get(server.url + "/v2/health/ready", timeout=5).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"not ready in {within_s} s:\n{server.log.read_text()[-3000:]}")


def _predict(client: httpx.Client) -> tuple[str, httpx.Response]:
    request_id = f"ray-{next(_ids)}"
    response = client.post(
        "/v1/models/digits:predict", json=SEVEN, headers={"x-request-id": request_id}
    )
    return request_id, response


def _replicas_answering(server: Server, requests: int = 40) -> set[str]:
    """The replicas that answered `requests` requests sent 8 at a time (each answered 200)."""
    names: set[str] = set()
    wrong: list[str] = []
    lock = threading.Lock()

    def send(count: int) -> None:
        with server.client() as client:
            for _ in range(count):
                _, response = _predict(client)
                with lock:
                    if response.status_code != 200 or REPLICA not in response.headers:
                        wrong.append(f"{response.status_code} {response.text}")
                    elif response.json()["predictions"][0]["label"] != "7":
                        wrong.append(response.text)
                    else:
                        names.add(response.headers[REPLICA])

    threads = [threading.Thread(target=send, args=(requests // 8,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong, wrong
    return names


def _replica_pids(server: Server) -> list[int]:
    """The Serve replica processes under this server (children of its raylet)."""

    def parent(pid: int) -> int:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rpartition(")")[2].split()[1])

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            if not title.startswith(b"ray::ServeReplica:"):
                continue
            pid = ancestor = int(entry.name)
            while ancestor > 1 and ancestor != server.process.pid:
                ancestor = parent(ancestor)
        except (OSError, ValueError):
            continue
        if ancestor == server.process.pid:
            found.append(pid)
    return found


def test_both_replicas_answer(ray_server: Server) -> None:
    names = _replicas_answering(ray_server)
    assert len(names) == 2, names
    assert all(name.startswith("SERVE_REPLICA::") for name in names)


def test_a_replica_killed_under_load_loses_no_acknowledged_request(ray_server: Server) -> None:
    before = _replicas_answering(ray_server, 16)
    pids = _replica_pids(ray_server)
    assert len(pids) == 2, pids
    outcomes: list[tuple[str, int, str | None]] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 6.0

    def load() -> None:
        with httpx.Client(base_url=ray_server.url, timeout=20.0) as client:  # no hang
            while time.monotonic() < stop_at:
                try:
                    request_id, response = _predict(client)
                except httpx.HTTPError as error:
                    with lock:
                        failures.append(f"{type(error).__name__}: {error}")
                    continue
                with lock:
                    outcomes.append(
                        (request_id, response.status_code, response.headers.get("retry-after"))
                    )
                    if response.status_code not in (200, 503):
                        failures.append(f"{response.status_code}: {response.text}")

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    os.kill(pids[0], signal.SIGKILL)
    for thread in threads:
        thread.join()

    assert not failures, failures
    refused = [o for o in outcomes if o[1] == 503]
    assert all(retry is not None and int(retry) >= 1 for _, _, retry in refused), refused
    acknowledged = [request_id for request_id, status, _ in outcomes if status == 200]
    assert len(acknowledged) > len(refused)

    # Every acknowledged request is in the prediction log: feedback on them all is taken
    # (all or none: one id the log lacks would be a 404).
    feedback = [{"request_id": r, "truth": "7"} for r in acknowledged]
    recorded = httpx.post(ray_server.url + "/v1/feedback", json={"feedback": feedback}, timeout=60)
    assert recorded.status_code == 200, recorded.text
    assert recorded.json() == {"recorded": len(acknowledged)}

    # The deployment recovers: two replicas answer again, one of them new.
    deadline = time.monotonic() + 30
    names: set[str] = set()
    while time.monotonic() < deadline:
        names = _replicas_answering(ray_server, 16)
        if len(names) == 2 and names != before:
            break
        time.sleep(0.5)
    assert len(names) == 2 and names != before, (before, names)
