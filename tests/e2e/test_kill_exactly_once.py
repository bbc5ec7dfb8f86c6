"""kill -9 under load, then a restart on the same store: every action is applied exactly once
by an idempotent receiver.

What inferd promises (src/inferd/actions/dispatcher.py, monitor/recording.py): an action is
committed to the store's outbox before its request is answered, and the dispatcher delivers
the outbox *at least once*, in order per model, each delivery of one action carrying the same
``Idempotency-Key`` (a uuid5 of model, request id, item, decision and action index). A kill
between a webhook POST and its "delivered" record sends that POST again after the restart.
So raw exactly-once delivery cannot hold by design; exactly-once *effects* hold at a receiver
that dedupes on the key, which is what tests/support/idempotent.py is.

The test makes that crash window certain rather than lucky: the receiver applies one delivery
and withholds its answer (``hold_next``), the clients keep loading the server so a backlog of
answered-but-undelivered actions builds behind it, and the server is SIGKILLed then. After a
restart on the same data dir it checks:

- every request answered 200 had its action applied downstream exactly once (none missing);
- a request that got no answer (in flight at the kill) had its action applied at most once;
- nothing was applied that no request asked for, and every key is the one derived from its
  request (one key per action, one action per key, never reused with another body);
- raw deliveries: the held action (and only it) arrived twice: once before the kill, again
  after the restart, with the same key and body, and the receiver answered it as a replay;
  every other action arrived exactly once;
- the receiver saw the actions in the outbox's order, and the outbox ends with every action
  delivered and no other.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from inferd.monitor.recording import idempotency_key
from inferd.store import DELIVERED, PENDING, default_store_url, open_store
from tests.e2e.conftest import BUNDLED, Server, start_server, stop_server
from tests.support.idempotent import IdempotentReceiver

MODEL = "breast-cancer"
DECISION = "audit"
HOOK = "/audit"
CLIENTS = 6
APPLIED_BEFORE_HOLD = 20  # deliveries that complete normally before the crash window opens
ANSWERED_WHILE_HELD = 40  # answers given while the dispatcher is stuck on the held delivery


def _instances() -> list[dict[str, Any]]:
    lines = (BUNDLED / MODEL / "eval" / "test.jsonl").read_text().splitlines()
    return [json.loads(line)["instance"] for line in lines[:16]]


def _repo(root: Path, hook_url: str) -> Path:
    """breast-cancer with one rule that fires for every case: a webhook to the receiver."""
    repo = root / "repo"
    shutil.copytree(BUNDLED / MODEL, repo / MODEL)
    spec_file = repo / MODEL / "model.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["decide"] = [
        {
            "decision": DECISION,
            "description": "every case is audited downstream",
            "when": 'probability("malignant") >= 0.0',
            "actions": [
                # A long timeout: the held delivery must not time out (and be retried) before
                # the kill; a short backoff: nothing should need one.
                {"type": "webhook", "url": hook_url, "timeout_s": 30, "backoff_s": 0.2}
            ],
        }
    ]
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    return repo


@dataclass
class Ledger:
    """What the clients saw, per request id."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answered: list[str] = field(default_factory=list)  # 200
    refused: dict[str, int] = field(default_factory=dict)  # another status
    unanswered: list[str] = field(default_factory=list)  # sent, no answer (the kill)

    def count(self) -> int:
        with self.lock:
            return len(self.answered)


def _client(url: str, worker: int, ledger: Ledger, stop: threading.Event) -> None:
    """Sends requests with unique ids until the server is gone (or the test stops it)."""
    instances = _instances()
    with httpx.Client(base_url=url, timeout=20.0) as http:
        for number in range(100_000):
            if stop.is_set():
                return
            request_id = f"kill9-{worker}-{number}"
            try:
                reply = http.post(
                    f"/v1/models/{MODEL}:predict",
                    json={"instances": [instances[(worker + number) % len(instances)]]},
                    headers={"X-Request-Id": request_id},
                )
            except httpx.TransportError:
                with ledger.lock:
                    ledger.unanswered.append(request_id)
                return  # the server was killed
            with ledger.lock:
                if reply.status_code == 200:
                    ledger.answered.append(request_id)
                else:
                    ledger.refused[request_id] = reply.status_code


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _key(request_id: str) -> str:
    return idempotency_key(MODEL, request_id, 0, DECISION, 0)


def test_sigkill_under_load_then_restart_applies_every_action_exactly_once(
    tmp_path: Path,
) -> None:
    receiver = IdempotentReceiver()
    receiver.start()
    data_dir = tmp_path / "data"
    repo = _repo(tmp_path, receiver.url(HOOK))
    ledger = Ledger()
    stop = threading.Event()
    servers: list[Server] = []
    workers: list[threading.Thread] = []
    try:
        first = start_server(repo, tmp_path / "first.log", "--data-dir", str(data_dir))
        servers.append(first)
        workers = [
            threading.Thread(target=_client, args=(first.url, w, ledger, stop), daemon=True)
            for w in range(CLIENTS)
        ]
        for worker in workers:
            worker.start()

        # Under load: some actions go through normally, then one is held at the receiver
        # (applied there, unanswered), and answers pile up behind it before the kill.
        assert receiver.wait_applied(APPLIED_BEFORE_HOLD, 30), "no deliveries under load"
        receiver.hold_next()
        held = receiver.wait_held(15)
        assert held is not None and held.key is not None, "no delivery came to be held"
        answered_at_hold = ledger.count()
        assert _wait(lambda: ledger.count() >= answered_at_hold + ANSWERED_WHILE_HELD, 20), (
            f"the server answered only {ledger.count() - answered_at_hold} requests "
            "while a delivery was held"
        )
        assert all(worker.is_alive() for worker in workers), "a client stopped before the kill"
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
        for worker in workers:
            worker.join(30)
        assert not any(worker.is_alive() for worker in workers), "a client hangs after the kill"
        receiver.release()  # its answer now goes to a dead socket
        killed_at = time.monotonic()

        with ledger.lock:
            answered = list(ledger.answered)
            unanswered = list(ledger.unanswered)
            refused = dict(ledger.refused)
        assert not refused, f"requests refused under plain load: {refused}"
        assert len(unanswered) == CLIENTS  # each client's last request met the kill
        applied_before = set(receiver.applied())
        backlog = {_key(r) for r in answered} - applied_before
        assert backlog, "every answered action was delivered before the kill: nothing to test"

        # The restart: same data dir, a new port; the dispatcher finds what was left.
        second = start_server(repo, tmp_path / "second.log", "--data-dir", str(data_dir))
        servers.append(second)
        store = open_store(default_store_url(data_dir))
        try:
            # Drained: nothing pending (an action is marked delivered only after its answer,
            # so by then every POST has arrived). The held action keeps it from being so
            # before the restart's dispatcher has run.
            assert _wait(lambda: store.action_counts().get((MODEL, PENDING), 0) == 0, 30), (
                f"actions still pending 30 s after the restart: {store.action_counts()}"
            )
            stop_server(second.process)  # nothing can be delivered after this
            outbox = sorted(store.list_actions(model=MODEL, limit=1_000_000), key=lambda a: a.id)
        finally:
            store.close()
    finally:
        stop.set()
        for server in servers:
            stop_server(server.process)
        receiver.stop()

    deliveries = receiver.deliveries()
    applied = receiver.applied()
    sent = set(answered) | set(unanswered)
    expected = {_key(r): r for r in sent}

    # Every delivery is a well-formed action of a request that was sent, keyed as inferd
    # derives its keys, and the receiver never saw a key reused with another body.
    assert Counter(d.outcome for d in deliveries).keys() <= {"applied", "replayed"}, [
        (d.key, d.outcome) for d in deliveries if d.outcome not in ("applied", "replayed")
    ]
    for delivery in deliveries:
        assert delivery.path == HOOK
        body = delivery.body
        assert body["request_id"] in sent, f"an action nobody asked for: {body}"
        assert delivery.key == body["idempotency_key"] == _key(body["request_id"])
        assert (body["model"], body["decision"], body["item"]) == (MODEL, DECISION, 0)

    # Exactly once for answered requests (the receiver applies a key at most once; none may
    # be missing), at most once for the unanswered ones.
    applied_keys = set(applied)
    missing = sorted(r for r in answered if _key(r) not in applied_keys)
    assert not missing, f"{len(missing)} answered 200 but never applied: {missing[:5]}"
    assert applied_keys <= set(expected)

    # The raw traffic, counted per action id: every action arrived once, but for the held one,
    # which the kill cut off between its POST and its record: twice, the second a replay.
    raw = Counter(d.key for d in deliveries)
    twice = [r for r in unanswered if raw[_key(r)] > 1 and _key(r) != held.key]
    assert not twice, f"unanswered requests whose action arrived more than once: {twice}"
    repeated = {key: n for key, n in raw.items() if n > 1}
    assert repeated == {held.key: 2}, (
        f"{len(repeated)} actions arrived more than once, e.g. "
        f"{dict(list(repeated.items())[:3])}; expected only the held action {held.key} "
        f"(request {expected.get(held.key)}), twice"
    )
    first_copy, second_copy = (d for d in deliveries if d.key == held.key)
    assert first_copy.outcome == "applied" and second_copy.outcome == "replayed"
    assert first_copy.arrived_at < killed_at < second_copy.arrived_at
    assert first_copy.raw == second_copy.raw

    # In the outbox's order; the outbox holds exactly the applied actions, all delivered.
    assert [a.idempotency_key for a in outbox] == applied
    assert {a.state for a in outbox} == {DELIVERED}, Counter(a.state for a in outbox)
    assert {a.request_id for a in outbox} >= set(answered)
