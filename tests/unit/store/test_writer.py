"""StoreWriter: group commit, errors to every waiter, on_saved, and a kill -9 mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from inferd.errors import ConflictError, ModelNotReadyError
from inferd.store import (
    ActionRecord,
    PredictionRecord,
    Store,
    StoreWriter,
    default_store_url,
    open_store,
)
from tests.unit.store.records import action, prediction


class Saves:
    """Wraps a store's ``save``: counts commits, can hold the first one, can fail them."""

    def __init__(self, store: Store) -> None:
        self.real = store.save
        self.calls: list[int] = []  # records per call
        self.first_started = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.failure: Exception | None = None
        store.save = self  # type: ignore[method-assign]

    def __call__(
        self, predictions: Sequence[PredictionRecord], actions: Sequence[ActionRecord]
    ) -> None:
        self.calls.append(len(predictions) + len(actions))
        self.first_started.set()
        assert self.gate.wait(10), "test gate never opened"
        if self.failure is not None:
            raise self.failure
        self.real(predictions, actions)


@pytest.fixture
def writer_and_saves(store: Store) -> Iterator[tuple[StoreWriter, Saves, list[set[str]]]]:
    saved: list[set[str]] = []
    saves = Saves(store)
    writer = StoreWriter(store, on_saved=saved.append)
    writer.start()
    yield writer, saves, saved
    saves.gate.set()
    writer.close()


async def test_concurrent_saves_share_commits(
    store: Store, writer_and_saves: tuple[StoreWriter, Saves, list[set[str]]]
) -> None:
    writer, saves, saved = writer_and_saves
    saves.gate.clear()  # the first commit waits, so the others queue up behind it
    first = asyncio.create_task(writer.save([prediction("r0")], [action("k0", model="a")]))
    assert await asyncio.to_thread(saves.first_started.wait, 10)
    rest = [
        asyncio.create_task(
            writer.save([prediction(f"r{i}")], [action(f"k{i}", model="ab"[i % 2])])
        )
        for i in range(1, 50)
    ]
    await asyncio.sleep(0.05)  # let every task queue its records (no timing is asserted)
    saves.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), 20)

    assert len(saves.calls) < 50
    assert sum(saves.calls) == 100  # every prediction and action, each committed once
    assert len(store.find_predictions([f"r{i}" for i in range(50)])) == 50
    assert sum(store.action_counts().values()) == 50
    assert set().union(*saved) == {"a", "b"}


async def test_on_saved_names_the_models_of_committed_actions(
    writer_and_saves: tuple[StoreWriter, Saves, list[set[str]]],
) -> None:
    writer, _, saved = writer_and_saves
    await asyncio.wait_for(writer.save([prediction("r1")], []), 10)
    assert saved == []  # no actions: nothing to deliver
    await asyncio.wait_for(writer.save([], [action("k1", model="x"), action("k2", model="y")]), 10)
    assert saved == [{"x", "y"}]
    await asyncio.wait_for(writer.save([], []), 10)  # nothing to write: returns at once
    assert saved == [{"x", "y"}]


async def test_a_failing_store_fails_every_waiter_then_the_writer_recovers(
    store: Store, writer_and_saves: tuple[StoreWriter, Saves, list[set[str]]]
) -> None:
    writer, saves, saved = writer_and_saves
    saves.failure = RuntimeError("disk full")
    results = await asyncio.wait_for(
        asyncio.gather(
            *(writer.save([prediction(f"r{i}")], [action(f"k{i}")]) for i in range(10)),
            return_exceptions=True,
        ),
        20,
    )
    assert len(results) == 10
    for result in results:
        assert isinstance(result, ModelNotReadyError)
        assert result.status_code == 503
        assert "could not record the prediction/actions in the store: disk full; retry" in str(
            result
        )
    assert saved == []
    assert store.action_counts() == {}

    saves.failure = None
    await asyncio.wait_for(writer.save([prediction("after")], [action("after")]), 10)
    assert list(store.find_predictions(["after"])) == ["after"]
    assert saved == [{"m"}]


async def test_one_bad_request_does_not_fail_its_group(
    store: Store, writer_and_saves: tuple[StoreWriter, Saves, list[set[str]]]
) -> None:
    writer, saves, _ = writer_and_saves
    saves.gate.clear()
    first = asyncio.create_task(writer.save([prediction("r0")], []))
    assert await asyncio.to_thread(saves.first_started.wait, 10)
    good = [asyncio.create_task(writer.save([], [action(f"k{i}")])) for i in range(5)]
    bad = asyncio.create_task(writer.save([], [action("bad", event={"x": object()})]))
    await asyncio.sleep(0.05)
    saves.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *good), 20)
    with pytest.raises(ModelNotReadyError, match="could not record"):
        await asyncio.wait_for(bad, 10)
    assert sorted(a.idempotency_key for a in store.list_actions()) == [f"k{i}" for i in range(5)]


async def test_close_commits_what_is_queued_and_refuses_more(store: Store) -> None:
    writer = StoreWriter(store, on_saved=None)
    with pytest.raises(RuntimeError, match="start"):
        await writer.save([prediction("r")], [])
    writer.start()
    pending = [asyncio.create_task(writer.save([prediction(f"r{i}")], [])) for i in range(20)]
    await asyncio.sleep(0)  # queued
    await asyncio.to_thread(writer.close)
    await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert len(store.find_predictions([f"r{i}" for i in range(20)])) == 20
    with pytest.raises(ModelNotReadyError, match="shutting down"):
        await writer.save([prediction("late")], [])


CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from inferd.store import ActionRecord, PredictionRecord, StoreWriter, open_store

    async def main(url):
        writer = StoreWriter(open_store(url))
        writer.start()
        i = 0
        while True:
            batch = [
                writer.save(
                    [PredictionRecord(f"r{j}", 0, "m", "1", time.time(), 1.0, None, {"y": j}, [])],
                    [ActionRecord("m", "1", f"r{j}", 0, "d", "d.log", "log", {}, {"j": j},
                                  f"k{j}", time.time())],
                )
                for j in range(i, i + 8)
            ]
            await asyncio.gather(*batch)
            print(" ".join(f"k{j}" for j in range(i, i + 8)), flush=True)
            i += 8

    asyncio.run(main(sys.argv[1]))
    """
)


def test_what_save_acknowledged_survives_a_kill_9(store: Store, store_url: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, store_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[str] = []
    try:
        assert child.stdout is not None
        while len(acknowledged) < 200:
            line = child.stdout.readline()
            assert line, f"the child stopped: {child.stderr.read() if child.stderr else ''}"
            acknowledged.extend(line.split())
    finally:
        os.kill(child.pid, signal.SIGKILL)  # mid-commit, most likely
        child.wait(30)
        if child.stdout is not None:
            child.stdout.close()
        if child.stderr is not None:
            child.stderr.close()

    reopened = open_store(store_url)
    try:
        stored = {a.idempotency_key for a in reopened.list_actions(limit=100_000)}
        assert set(acknowledged) <= stored
        logged = reopened.find_predictions([k.replace("k", "r") for k in acknowledged])
        assert len(logged) == len(acknowledged)
        reopened.save([], [action("after-the-kill")])  # and it still takes writes
        assert reopened.next_pending("m") is not None
    finally:
        reopened.close()


async def test_log_rows_are_written_behind_and_flush_waits_for_them(tmp_path: Path) -> None:
    store = open_store(default_store_url(tmp_path / "data"))
    writer = StoreWriter(store)
    writer.start()
    try:
        writer.log([prediction(f"r{i}") for i in range(5)])  # returns before the commit
        await writer.flush()
        assert len(store.logged("m")) == 5
    finally:
        writer.close()
        store.close()


@pytest.mark.parametrize("same_group", [False, True])
async def test_a_request_id_reused_for_another_request_is_a_409_not_dropped_actions(
    store: Store,
    writer_and_saves: tuple[StoreWriter, Saves, list[set[str]]],
    same_group: bool,
) -> None:
    writer, saves, _ = writer_and_saves
    first = {"key": "k", "prediction": {"label": "cat"}, "inputs": {"x": [1.0]}}
    retry = dict(first, time="later")  # the same request sent again
    other = dict(first, prediction={"label": "dog"})  # another request under the same id
    if same_group:
        saves.gate.clear()
        held = asyncio.create_task(writer.save([prediction("r0")], []))
        assert await asyncio.to_thread(saves.first_started.wait, 10)
    sends = [
        asyncio.create_task(writer.save([prediction("req-k")], [action("k", event=event)]))
        for event in (first, retry, other)
    ]
    if same_group:
        await asyncio.sleep(0.05)
        saves.gate.set()
        await held
    done = await asyncio.gather(*sends, return_exceptions=True)
    assert done[:2] == [None, None]
    assert isinstance(done[2], ConflictError) and done[2].status_code == 409
    assert "request id 'req-k' was already used for another request" in done[2].message
    [kept] = store.list_actions()
    assert kept.event["prediction"] == {"label": "cat"}
    assert [row.request_id for row in store.logged("m")].count("req-k") == 2  # none of it
