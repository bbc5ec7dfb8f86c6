"""`inferd serve --workers N`: N processes on one port, one outbox dispatcher, metrics added
up across them, readiness of all, a dead worker started again, SIGTERM draining every one."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import (
    BUNDLED,
    SLOW_MODEL,
    SLOW_SPEC,
    Server,
    free_port,
    start_server,
    stop_server,
)
from tests.support.idempotent import IdempotentReceiver

MODEL = "breast-cancer"
HOOK = "/audit"


def _instances() -> list[dict[str, Any]]:
    lines = (BUNDLED / MODEL / "eval" / "test.jsonl").read_text().splitlines()
    return [json.loads(line)["instance"] for line in lines[:8]]


def workers_of(supervisor: int) -> list[int]:
    """The worker processes `inferd serve` started (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    found = []
    for pid in children:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            found.append(int(pid))
    return sorted(found)


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def ready(server: Server) -> bool:
    try:
        return httpx.get(server.url + "/v2/health/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def requests_total(server: Server) -> float:
    """The server's inferd_requests_total for the model, 200s only, as one scrape sees it."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    pattern = rf'^inferd_requests_total\{{model="{MODEL}",protocol="v1",status="200"\}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def predict_fresh(server: Server, number: int) -> httpx.Response:
    """One request on its own connection, so the kernel picks a worker for each."""
    instances = _instances()
    return httpx.post(
        f"{server.url}/v1/models/{MODEL}:predict",
        json={"instances": [instances[number % len(instances)]]},
        headers={"X-Request-Id": f"workers-{number}"},
        timeout=30,
    )


@pytest.fixture(scope="module")
def receiver() -> Iterator[IdempotentReceiver]:
    hooks = IdempotentReceiver()
    hooks.start()
    try:
        yield hooks
    finally:
        hooks.stop()


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, receiver: IdempotentReceiver
) -> Iterator[Server]:
    """breast-cancer with a webhook on every case, served by two workers."""
    root = tmp_path_factory.mktemp("workers")
    repo = root / "repo"
    shutil.copytree(BUNDLED / MODEL, repo / MODEL)
    spec_file = repo / MODEL / "model.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["decide"] = [
        {
            "decision": "audit",
            "when": 'probability("malignant") >= 0.0',
            "actions": [{"type": "webhook", "url": receiver.url(HOOK), "backoff_s": 0.2}],
        }
    ]
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    server = start_server(repo, root / "server.log", "--workers", "2")
    try:
        assert wait_for(lambda: ready(server), 60), server.log.read_text()
        yield server
    finally:
        stop_server(server.process)


def test_two_workers_answer_on_one_port_and_deliver_each_action_once(
    two_workers: Server, receiver: IdempotentReceiver
) -> None:
    assert len(workers_of(two_workers.process.pid)) == 2
    before = requests_total(two_workers)
    replies = [predict_fresh(two_workers, n) for n in range(60)]
    assert [r.status_code for r in replies] == [200] * 60
    # One scrape, whichever worker it reaches, counts every worker's requests.
    assert requests_total(two_workers) == before + 60
    # Every worker saves its actions; one dispatcher delivers them all, each once.
    keys = {f"workers-{n}" for n in range(60)}
    assert receiver.wait_applied(60, 30), f"{len(receiver.applied())} of 60 delivered"
    time.sleep(2)  # a second dispatcher would deliver again within its 1 s poll
    arrived = Counter(d.key for d in receiver.deliveries())
    assert len(arrived) == 60 and set(arrived.values()) == {1}, arrived.most_common(3)
    bodies = {d.body["request_id"] for d in receiver.deliveries()}
    assert bodies == keys


def test_a_killed_worker_is_started_again_and_the_server_is_ready_only_then(
    two_workers: Server,
) -> None:
    supervisor = two_workers.process.pid
    before = workers_of(supervisor)
    served_before = requests_total(two_workers)
    for n in range(40):
        assert predict_fresh(two_workers, n).status_code == 200
    served = requests_total(two_workers)
    assert served == served_before + 40

    os.kill(before[1], signal.SIGKILL)
    not_ready_seen = wait_for(lambda: not ready(two_workers), 10)
    assert not_ready_seen, "the server stayed ready with a worker dead"
    assert wait_for(lambda: ready(two_workers), 60), two_workers.log.read_text()[-3000:]
    after = workers_of(supervisor)
    assert len(after) == 2 and before[0] in after and before[1] not in after, (before, after)
    # The new worker counts from zero: the dead one's requests leave the total, and since
    # both workers answered some of the 40, the total is now less but not zero.
    remaining = requests_total(two_workers)
    assert 0 < remaining < served, (remaining, served)
    for n in range(10):
        assert predict_fresh(two_workers, n).status_code == 200
    assert "worker 1 (pid" in two_workers.log.read_text(), two_workers.log.read_text()[-3000:]


def test_sigterm_drains_every_worker(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "slow" / "1").mkdir(parents=True)
    (repo / "slow" / "model.yaml").write_text(SLOW_SPEC)
    (repo / "slow" / "1" / "model.py").write_text(SLOW_MODEL)
    server = start_server(repo, tmp_path / "server.log", "--workers", "2", "--trust-code")
    try:
        assert wait_for(lambda: ready(server), 60), server.log.read_text()
        workers = workers_of(server.process.pid)
        assert len(workers) == 2
        statuses: list[int] = []

        def slow_request() -> None:
            body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.5]}]}
            reply = httpx.post(f"{server.url}/v2/models/slow/infer", json=body, timeout=30)
            statuses.append(reply.status_code)

        clients = [threading.Thread(target=slow_request) for _ in range(6)]
        for client in clients:
            client.start()
        time.sleep(0.5)  # all six are in flight, spread over both workers
        os.kill(server.process.pid, signal.SIGTERM)
        for client in clients:
            client.join(30)
        assert statuses == [200] * 6
        assert server.process.wait(30) == 0
        assert wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in workers), 10)
        log = server.log.read_text()
        assert "stopping: draining 2 worker(s)" in log
        assert log.count("stopping: finishing the requests in flight") == 2
    finally:
        stop_server(server.process)


def _serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "inferd.cli", "serve", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("count", ["0", "-2", "many"])
def test_a_worker_count_that_is_not_one_or_more_is_refused(count: str) -> None:
    done = _serve(str(BUNDLED), "--workers", count, "--port", str(free_port()))
    assert done.returncode == 1
    assert "--workers is a whole number of at least 1, or auto" in done.stderr


def test_more_workers_than_memory_holds_are_refused_at_start(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(BUNDLED / "digits", repo / "digits")
    done = _serve(
        str(repo), "--workers", "100000", "--port", str(free_port()), "--data-dir", str(tmp_path)
    )
    assert done.returncode == 1, done.stderr
    said = " ".join(done.stderr.split())  # the error is wrapped to the terminal's width
    found = re.search(r"--workers 100000 needs about .* use --workers (\d+) or fewer", said)
    assert found is not None, said
    assert 1 <= int(found.group(1)) < 100000


SHARED_SOCKET = """
import sys
from inferd.deploy import workers
from inferd.cli import app

workers.REUSE_PORT = False  # as on an OS whose SO_REUSEPORT does not spread connections
app(sys.argv[1:])
"""


def test_where_reuse_port_does_not_spread_connections_workers_share_one_socket(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(BUNDLED / MODEL, repo / MODEL)
    port = free_port()
    log = tmp_path / "server.log"
    command = [sys.executable, "-c", SHARED_SOCKET, "serve", str(repo), "--port", str(port)]
    command += ["--workers", "2", "--data-dir", str(tmp_path / "data")]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(url=f"http://127.0.0.1:{port}", repo=repo, process=process, log=log)
    try:
        assert wait_for(lambda: ready(server), 60), log.read_text()
        assert len(workers_of(process.pid)) == 2
        assert [predict_fresh(server, n).status_code for n in range(20)] == [200] * 20
        assert requests_total(server) == 20
    finally:
        stop_server(process)
    assert process.returncode == 0, log.read_text()
