"""The dispatcher against a real webhook receiver: delivery, retries, order, kinds, restarts."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import inferd
from inferd.actions import TRUST_CODE_NEEDED
from inferd.actions.delivery import Deliverer, Outcome
from inferd.spec import Environment, PythonAction
from inferd.store import ActionRecord, Store, StoredAction, StoreWriter
from tests.support.webhook import Receiver, Reply
from tests.unit.actions.conftest import (
    MakeDispatcher,
    by_key,
    counted,
    enqueue,
    settled,
    until,
    webhook,
)

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05}  # retries without waiting


async def test_a_webhook_is_posted_with_its_body_and_headers(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher, outcomes: list[Any]
) -> None:
    d = await dispatcher()
    enqueue(store, d, webhook("k1", receiver.url("/hook"), headers={"X-Token": "s3cret"}))
    actions = await until(store, settled("k1"))

    (request,) = receiver.at("/hook")
    assert request.body == {"key": "k1", "model": "m"}
    assert request.key == "k1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-token"] == "s3cret"
    assert request.headers["user-agent"] == f"inferd/{inferd.__version__}"
    k1 = actions["k1"]
    assert (k1.state, k1.attempts, k1.last_error) == ("delivered", 1, None)
    assert k1.delivered_at is not None and k1.delivered_at >= k1.created_at
    assert await counted(outcomes, 1) == [("m", "webhook", "delivered")]


async def test_a_500_is_retried_until_it_succeeds(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher, outcomes: list[Any]
) -> None:
    receiver.reply("/hook", Reply(500, "busy"), Reply(502, "bad gateway"))
    d = await dispatcher()
    enqueue(store, d, webhook("k1", receiver.url("/hook"), **FAST))
    actions = await until(store, settled("k1"))

    assert [r.key for r in receiver.at("/hook")] == ["k1", "k1", "k1"]  # the same key each time
    assert (actions["k1"].state, actions["k1"].attempts) == ("delivered", 3)
    assert "HTTP 502" in (actions["k1"].last_error or "")
    assert await counted(outcomes, 3) == [
        ("m", "webhook", o) for o in ("retry", "retry", "delivered")
    ]


async def test_after_max_attempts_it_fails_and_the_next_action_still_goes(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher, outcomes: list[Any]
) -> None:
    receiver.reply("/down", then=Reply(503, "down for maintenance"))
    d = await dispatcher()
    enqueue(
        store,
        d,
        webhook("k1", receiver.url("/down"), max_attempts=3, **FAST),
        webhook("k2", receiver.url("/up")),
    )
    actions = await until(store, settled("k1", "k2"))

    k1 = actions["k1"]
    assert (k1.state, k1.attempts) == ("failed", 3)
    assert k1.last_error is not None
    assert k1.last_error.startswith("gave up after 3 attempts: HTTP 503")
    assert "down for maintenance" in k1.last_error
    assert actions["k2"].state == "delivered"
    assert [r.path for r in receiver.requests] == ["/down"] * 3 + ["/up"]
    assert Counter(o for _, _, o in await counted(outcomes, 4)) == {
        "retry": 2,
        "failed": 1,
        "delivered": 1,
    }


async def test_a_400_fails_at_once(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher, outcomes: list[Any]
) -> None:
    receiver.reply("/hook", Reply(400, "field 'score' is required " + "x" * 500))
    d = await dispatcher()
    enqueue(store, d, webhook("k1", receiver.url("/hook"), **FAST))
    actions = await until(store, settled("k1"))

    k1 = actions["k1"]
    assert (k1.state, k1.attempts) == ("failed", 1)
    assert k1.last_error is not None and k1.last_error.startswith("HTTP 400 from http://")
    assert "field 'score' is required" in k1.last_error
    assert k1.last_error.endswith(": " + ("field 'score' is required " + "x" * 500)[:200])
    assert len(receiver.at("/hook")) == 1
    assert await counted(outcomes, 1) == [("m", "webhook", "failed")]


async def test_a_redirect_is_not_followed(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher
) -> None:
    receiver.reply("/old", Reply(308, "", {"Location": receiver.url("/new")}))
    d = await dispatcher()
    enqueue(store, d, webhook("k1", receiver.url("/old"), **FAST))
    actions = await until(store, settled("k1"))

    assert actions["k1"].state == "failed"
    assert "redirects are not followed" in (actions["k1"].last_error or "")
    assert receiver.at("/new") == []


async def test_a_timeout_is_retried(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher, outcomes: list[Any]
) -> None:
    receiver.reply("/slow", Reply(200, hang_s=5.0))  # the first request hangs
    d = await dispatcher()
    enqueue(store, d, webhook("k1", receiver.url("/slow"), timeout_s=0.2, **FAST))
    actions = await until(store, settled("k1"))

    assert (actions["k1"].state, actions["k1"].attempts) == ("delivered", 2)
    assert "no answer from" in (actions["k1"].last_error or "")
    assert await counted(outcomes, 2) == [("m", "webhook", "retry"), ("m", "webhook", "delivered")]


async def test_a_refused_connection_is_retried(
    store: Store, dispatcher: MakeDispatcher, outcomes: list[Any]
) -> None:
    closed = Receiver()  # bound, then closed: nothing listens on its port
    url = closed.url("/hook")
    closed.stop()
    d = await dispatcher()
    enqueue(store, d, webhook("k1", url, max_attempts=2, **FAST))
    actions = await until(store, settled("k1"))

    assert (actions["k1"].state, actions["k1"].attempts) == ("failed", 2)
    assert "could not reach" in (actions["k1"].last_error or "")
    assert await counted(outcomes, 2) == [("m", "webhook", "retry"), ("m", "webhook", "failed")]


async def test_retry_after_is_honoured_up_to_max_backoff(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher
) -> None:
    receiver.reply("/a", then=Reply(429, "slow down", {"Retry-After": "120"}))
    receiver.reply("/b", then=Reply(503, "later", {"Retry-After": "120"}))
    d = await dispatcher()
    before = time.time()
    enqueue(store, d, webhook("a", receiver.url("/a"), backoff_s=0.01, model="a"))
    enqueue(store, d, webhook("b", receiver.url("/b"), backoff_s=0.01, max_backoff_s=2, model="b"))
    actions = await until(store, lambda a: a["a"].attempts == 1 and a["b"].attempts == 1)

    assert actions["a"].state == "pending"
    assert actions["a"].next_attempt_at >= before + 119  # Retry-After, not the 0.01 s backoff
    assert actions["b"].next_attempt_at <= time.time() + 2  # capped by max_backoff_s


async def test_a_models_actions_arrive_in_order_even_when_the_first_is_retried(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher
) -> None:
    receiver.reply("/first", Reply(500, "not yet"))
    d = await dispatcher()
    enqueue(
        store,
        d,
        webhook("k1", receiver.url("/first"), backoff_s=0.2),
        webhook("k2", receiver.url("/second")),
        webhook("k3", receiver.url("/second")),
    )
    await until(store, settled("k1", "k2", "k3"))

    assert [(r.path, r.key) for r in receiver.requests] == [
        ("/first", "k1"),  # answered 500: k2 and k3 wait for it
        ("/first", "k1"),
        ("/second", "k2"),
        ("/second", "k3"),
    ]


async def test_models_deliver_independently(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher
) -> None:
    receiver.reply("/stuck", then=Reply(500, "down"))
    d = await dispatcher()
    enqueue(store, d, webhook("stuck", receiver.url("/stuck"), model="a", backoff_s=60))
    enqueue(store, d, webhook("behind", receiver.url("/ok"), model="a"))
    enqueue(store, d, webhook("free", receiver.url("/ok"), model="b"))
    actions = await until(store, lambda a: settled("free")(a) and a["stuck"].attempts == 1)

    assert actions["free"].state == "delivered"
    assert (actions["stuck"].state, actions["stuck"].attempts) == ("pending", 1)
    assert actions["behind"].state == "pending"  # behind model a's retrying action
    assert [r.key for r in receiver.at("/ok")] == ["free"]


async def test_actions_left_pending_by_a_previous_run_are_delivered_on_start(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher
) -> None:
    enqueue(
        store,
        None,
        webhook("a1", receiver.url("/a"), model="a"),
        webhook("b1", receiver.url("/b"), model="b"),
        webhook("a2", receiver.url("/a"), model="a"),
    )
    await dispatcher()  # no notify: it must find them itself
    await until(store, settled("a1", "a2", "b1"))
    assert [r.key for r in receiver.at("/a")] == ["a1", "a2"]
    assert [r.key for r in receiver.at("/b")] == ["b1"]


async def test_a_delivery_cut_off_by_stop_is_delivered_by_the_next_dispatcher(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher
) -> None:
    receiver.reply("/hook", Reply(200, hang_s=30.0))
    first = await dispatcher()
    enqueue(store, first, webhook("k1", receiver.url("/hook"), timeout_s=60))
    while not receiver.at("/hook"):  # the POST is in flight
        await asyncio.sleep(0.01)
    await asyncio.wait_for(first.stop(), 10)
    assert by_key(store)["k1"].state == "pending"  # not known to be delivered

    await dispatcher()
    actions = await until(store, settled("k1"))
    assert actions["k1"].state == "delivered"
    assert [r.key for r in receiver.at("/hook")] == ["k1", "k1"]  # at least once


async def test_the_store_writer_wakes_the_dispatcher(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher
) -> None:
    d = await dispatcher(poll_s=3600)  # only the writer's notification can start the worker
    await asyncio.sleep(0.05)  # the start-up look at pending_models is done
    writer = StoreWriter(store, on_saved=d.notify)  # notify from the writer's thread
    writer.start()
    try:
        await writer.save([], [webhook("k1", receiver.url("/hook"))])
        await until(store, settled("k1"))
    finally:
        await asyncio.to_thread(writer.close)
    assert [r.key for r in receiver.at("/hook")] == ["k1"]


def _log_action(key: str, **target: Any) -> ActionRecord:
    return ActionRecord(
        model="m",
        version="2",
        request_id="req-1",
        item=3,
        decision="alert",
        action="alert.log",
        kind="log",
        target=target,
        event={"score": 0.97, "label": "fraud"},
        idempotency_key=key,
        created_at=time.time(),
    )


async def test_a_log_action_writes_one_structured_line(
    store: Store, dispatcher: MakeDispatcher, outcomes: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="inferd.actions")
    d = await dispatcher()
    enqueue(store, d, _log_action("k-info"), _log_action("k-warn", level="warning"))
    actions = await until(store, settled("k-info", "k-warn"))

    assert actions["k-info"].state == actions["k-warn"].state == "delivered"
    lines = [
        r
        for r in caplog.records
        if r.name == "inferd.actions" and "idempotency_key" in r.getMessage()
    ]
    assert [r.levelno for r in lines] == [logging.INFO, logging.WARNING]
    line = json.loads(lines[0].getMessage())
    assert line == {
        "action": "alert.log",
        "model": "m",
        "version": "2",
        "request_id": "req-1",
        "item": 3,
        "decision": "alert",
        "idempotency_key": "k-info",
        "event": {"score": 0.97, "label": "fraud"},
    }
    assert await counted(outcomes, 2) == [("m", "log", "delivered")] * 2


ACTIONS_PY = textwrap.dedent(
    """
    import json
    from pathlib import Path

    HERE = Path(__file__).parent


    def record(event):
        with open(HERE / "received.jsonl", "a") as out:
            out.write(json.dumps(event) + "\\n")


    def flaky(event):
        tries = HERE / "tries"
        count = int(tries.read_text()) if tries.exists() else 0
        tries.write_text(str(count + 1))
        if count == 0:
            raise ConnectionError("the ticket system is down")
        record(event)


    def hang(event):
        import time

        time.sleep(3)
    """
)


def _python_action(key: str, folder: Path, entry: str, **target: Any) -> ActionRecord:
    return ActionRecord(
        model="m",
        version="1",
        request_id=f"req-{key}",
        item=0,
        decision="escalate",
        action="escalate.python",
        kind="python",
        target={"entry": entry, "folder": str(folder), **target},
        event={"key": key, "score": 0.5},
        idempotency_key=key,
        created_at=time.time(),
    )


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "models" / "m"
    (folder / "hooks").mkdir(parents=True)
    (folder / "hooks" / "actions.py").write_text(ACTIONS_PY)
    return folder


def _received(folder: Path) -> list[Any]:
    out = folder / "hooks" / "received.jsonl"
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


async def test_a_python_action_runs_with_trust_code(
    store: Store, dispatcher: MakeDispatcher, model_folder: Path, outcomes: list[Any]
) -> None:
    d = await dispatcher(trust_code=True)
    enqueue(
        store,
        d,
        _python_action("k1", model_folder, "hooks/actions.py:record"),
        _python_action("k2", model_folder, "hooks/actions.py:record"),
        _python_action("k3", model_folder, "hooks/actions.py:flaky", **FAST),
    )
    actions = await until(store, settled("k1", "k2", "k3"))

    assert [a.state for a in (actions["k1"], actions["k2"], actions["k3"])] == ["delivered"] * 3
    assert actions["k3"].attempts == 2
    assert "ConnectionError: the ticket system is down" in (actions["k3"].last_error or "")
    assert [e["key"] for e in _received(model_folder)] == ["k1", "k2", "k3"]
    assert Counter(o for _, _, o in await counted(outcomes, 4)) == {"delivered": 3, "retry": 1}


async def test_a_python_action_that_hangs_is_retried_after_its_timeout(
    store: Store, dispatcher: MakeDispatcher, model_folder: Path
) -> None:
    d = await dispatcher(trust_code=True)
    enqueue(
        store,
        d,
        _python_action("k1", model_folder, "hooks/actions.py:hang", timeout_s=0.2, **FAST),
        _python_action("k2", model_folder, "hooks/actions.py:record"),
    )
    k1 = (await until(store, lambda found: "k1" in found and found["k1"].attempts >= 1))["k1"]
    assert k1.state == "pending"
    assert "hooks/actions.py:hang did not return within 0.2 s" in (k1.last_error or "")
    assert PythonAction(type="python", entry="a.py:f").timeout_s == 30.0  # never unbounded


async def test_a_python_action_fails_without_trust_code(
    store: Store, dispatcher: MakeDispatcher, model_folder: Path, outcomes: list[Any]
) -> None:
    d = await dispatcher(trust_code=False)
    enqueue(store, d, _python_action("k1", model_folder, "hooks/actions.py:record"))
    actions = await until(store, settled("k1"))

    assert (actions["k1"].state, actions["k1"].last_error) == ("failed", TRUST_CODE_NEEDED)
    assert "--trust-code" in TRUST_CODE_NEEDED
    assert _received(model_folder) == []
    assert await counted(outcomes, 1) == [("m", "python", "failed")]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("../outside.py:record", "escapes the model folder"),
        ("{outside}:record", "escapes the model folder"),  # an absolute path elsewhere
        ("hooks/missing.py:record", "there is no file"),
        ("hooks/actions.py:nothing", "defines no function nothing"),
        ("hooks/actions.py", "is not 'path/inside/model/folder.py:function'"),
    ],
)
async def test_a_bad_python_entry_fails_at_once(
    store: Store, dispatcher: MakeDispatcher, model_folder: Path, entry: str, says: str
) -> None:
    outside = model_folder.parent / "outside.py"
    outside.write_text(ACTIONS_PY)
    d = await dispatcher(trust_code=True)
    entry = entry.format(outside=outside)
    enqueue(store, d, _python_action("k1", model_folder, entry, **FAST))
    actions = await until(store, settled("k1"))

    assert (actions["k1"].state, actions["k1"].attempts) == ("failed", 1)
    assert says in (actions["k1"].last_error or "")
    assert not (model_folder.parent / "received.jsonl").exists()


async def test_an_unexpected_error_in_a_delivery_counts_as_a_retry(
    store: Store,
    receiver: Receiver,
    dispatcher: MakeDispatcher,
    outcomes: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = Deliverer.deliver
    calls = 0

    async def broken_once(self: Deliverer, action: StoredAction) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in a delivery")
        return await real(self, action)

    monkeypatch.setattr(Deliverer, "deliver", broken_once)
    d = await dispatcher()
    enqueue(store, d, webhook("k1", receiver.url("/hook"), **FAST))
    actions = await until(store, settled("k1"))

    assert (actions["k1"].state, actions["k1"].attempts) == ("delivered", 2)
    assert "RuntimeError: a bug in a delivery" in (actions["k1"].last_error or "")
    assert await counted(outcomes, 2) == [("m", "webhook", "retry"), ("m", "webhook", "delivered")]


async def test_outcomes_are_counted_per_model_and_kind(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher, outcomes: list[Any]
) -> None:
    receiver.reply("/bad", then=Reply(404, "no such hook"))
    receiver.reply("/flaky", Reply(500, "oops"))
    d = await dispatcher()
    enqueue(
        store,
        d,
        webhook("a1", receiver.url("/ok"), model="a"),
        webhook("a2", receiver.url("/bad"), model="a"),
        webhook("b1", receiver.url("/flaky"), model="b", **FAST),
        _log_action("m1"),
    )
    await until(store, settled("a1", "a2", "b1", "m1"))
    assert Counter(await counted(outcomes, 5)) == {
        ("a", "webhook", "delivered"): 1,
        ("a", "webhook", "failed"): 1,
        ("b", "webhook", "retry"): 1,
        ("b", "webhook", "delivered"): 1,
        ("m", "log", "delivered"): 1,
    }


async def test_a_failing_outcome_callback_does_not_stop_delivery(
    store: Store, receiver: Receiver, dispatcher: MakeDispatcher
) -> None:
    def broken(*_: str) -> None:
        raise ValueError("metrics are down")

    d = await dispatcher(on_outcome=broken)
    enqueue(store, d, webhook("k1", receiver.url("/h")), webhook("k2", receiver.url("/h")))
    await until(store, settled("k1", "k2"))
    assert [r.key for r in receiver.at("/h")] == ["k1", "k2"]


async def test_a_webhooks_variables_are_read_at_delivery_and_never_stored(
    store: Store,
    receiver: Receiver,
    dispatcher: MakeDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "t0ken")
    monkeypatch.setenv("HOOK_PATH", "/hook")
    d = await dispatcher(environment=Environment(frozenset({"HOOK_TOKEN", "HOOK_PATH"})))
    url = receiver.url("${HOOK_PATH}")
    enqueue(store, d, webhook("k1", url, headers={"Authorization": "Bearer ${HOOK_TOKEN}"}))
    enqueue(store, d, webhook("k2", receiver.url("/hook")))
    actions = await until(store, settled("k1", "k2"))
    (request, _) = receiver.at("/hook")
    assert request.headers["authorization"] == "Bearer t0ken"
    assert actions["k1"].target["headers"] == {"Authorization": "Bearer ${HOOK_TOKEN}"}
    assert "t0ken" not in json.dumps([a.target for a in actions.values()])
    monkeypatch.delenv("HOOK_TOKEN")  # a restart without it: retried, not sent without it
    enqueue(store, d, webhook("k3", receiver.url("/hook"), headers={"X": "${HOOK_TOKEN}"}))
    k3 = (await until(store, lambda found: "k3" in found and found["k3"].attempts >= 1))["k3"]
    assert k3.state == "pending" and "HOOK_TOKEN is not set" in (k3.last_error or "")
