"""Batcher with plain functions: batch composition, errors, deadlines, cancellation, stop.

Timing-free where possible: a threading.Event "gate" holds the worker busy so a queue can build
deterministically, and tests assert batch compositions and orderings, not durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from inferd.batching import Batcher
from inferd.errors import (
    BadRequestError,
    DeadlineExceededError,
    ModelError,
    ModelNotReadyError,
    OverloadedError,
)

MakeBatcher = Callable[..., Awaitable[Batcher[int, int]]]


class Doubler:
    """run_batch that records each batch and, if gated, blocks until the gate opens."""

    def __init__(self, gated: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        if not gated:
            self.gate.set()

    def __call__(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(list(items))
        assert self.gate.wait(10), "test gate never opened"
        return [x * 2 for x in items]

    @property
    def seen(self) -> list[int]:
        return [x for batch in self.batches for x in batch]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll (test-side only) until the batcher reaches a state."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.002)


async def gather(*aws: Awaitable[Any], return_exceptions: bool = False) -> list[Any]:
    """asyncio.gather with a timeout, so a regression fails instead of hanging the run."""
    return await asyncio.wait_for(asyncio.gather(*aws, return_exceptions=return_exceptions), 10)


async def soon(aw: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(aw, 10)


@pytest.fixture
async def make() -> AsyncIterator[MakeBatcher]:
    made: list[Batcher[Any, Any]] = []

    async def factory(run_batch: Callable[[list[int]], Any], **kw: Any) -> Batcher[int, int]:
        kw.setdefault("max_batch_size", 4)
        kw.setdefault("max_delay_ms", 0)
        kw.setdefault("max_queue", 100)
        batcher: Batcher[int, int] = Batcher(run_batch, name="test", **kw)
        await batcher.start()
        made.append(batcher)
        return batcher

    yield factory
    for batcher in made:
        await asyncio.wait_for(batcher.stop(drain=False), 20)


async def fill_while_busy(
    b: Batcher[int, int], fn: Doubler, items: range
) -> list[asyncio.Task[Any]]:
    """Start item -1 alone (holding the worker), then queue ``items`` behind it."""
    first = asyncio.create_task(b.submit(-1))
    await until(lambda: b.running == 1)
    tasks = [asyncio.create_task(b.submit(i)) for i in items]
    await until(lambda: b.queue_depth == len(items))
    return [first, *tasks]


async def test_queued_items_form_full_batches_with_per_item_results(make: MakeBatcher) -> None:
    fn = Doubler(gated=True)
    running_at_start: list[int] = []
    b: Batcher[int, int]
    b = await make(fn, max_batch_size=4, on_batch=lambda _: running_at_start.append(b.running))
    tasks = await fill_while_busy(b, fn, range(10))
    assert fn.batches == [[-1]]  # delay 0: started at once, alone; none start while busy
    fn.gate.set()
    results = await gather(*tasks)
    assert [r for r, _ in results] == [x * 2 for x in [-1, *range(10)]]
    assert fn.batches == [[-1], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert running_at_start == [1, 1, 1, 1]  # one worker: a batch never starts while busy


async def test_concurrent_submits_batch_up_to_max(make: MakeBatcher) -> None:
    fn = Doubler()
    b = await make(fn, max_batch_size=4, max_delay_ms=0)
    results = await gather(*(b.submit(i) for i in range(20)))
    assert [r for r, _ in results] == [i * 2 for i in range(20)]
    assert sorted(fn.seen) == list(range(20))
    assert max(map(len, fn.batches)) > 1
    assert all(len(batch) <= 4 for batch in fn.batches)


@pytest.mark.parametrize("size", [1, 0])
async def test_max_batch_size_one_gives_singles(make: MakeBatcher, size: int) -> None:
    fn = Doubler(gated=True)
    b = await make(fn, max_batch_size=size)
    tasks = await fill_while_busy(b, fn, range(5))
    fn.gate.set()
    await gather(*tasks)
    assert fn.batches == [[-1], [0], [1], [2], [3], [4]]


async def test_two_workers_run_two_batches_at_once(make: MakeBatcher) -> None:
    barrier = threading.Barrier(2, timeout=10)  # breaks (ModelError) unless both run together

    def fn(items: list[int]) -> list[int]:
        barrier.wait()
        return items

    b = await make(fn, max_batch_size=1, workers=2)
    assert [r for r, _ in await gather(b.submit(1), b.submit(2))] == [1, 2]


async def test_max_delay_waits_to_fill_a_batch(make: MakeBatcher) -> None:
    fn = Doubler()
    b = await make(fn, max_batch_size=8, max_delay_ms=500)
    tasks = []
    for i in range(3):
        tasks.append(asyncio.create_task(b.submit(i)))
        await asyncio.sleep(0.01)
    await gather(*tasks)
    assert fn.batches == [[0, 1, 2]]


async def test_lone_item_starts_after_max_delay(make: MakeBatcher) -> None:
    fn = Doubler()
    b = await make(fn, max_batch_size=8, max_delay_ms=100)
    result, waited = await asyncio.wait_for(b.submit(21), 10)
    assert result == 42
    assert 0.099 <= waited < 2.0  # waits the delay, then is not held much longer


async def test_max_delay_counts_from_the_oldest_item(make: MakeBatcher) -> None:
    fn = Doubler()
    b = await make(fn, max_batch_size=1000, max_delay_ms=100)
    tasks = []
    for i in range(25):  # a steady trickle, 20 ms apart, never lets the newest item age 100 ms
        tasks.append(asyncio.create_task(b.submit(i)))
        await asyncio.sleep(0.02)
    await gather(*tasks)
    assert len(fn.batches) >= 2
    assert 24 not in fn.batches[0]


async def test_full_batch_does_not_wait_for_delay(make: MakeBatcher) -> None:
    fn = Doubler()
    b = await make(fn, max_batch_size=3, max_delay_ms=60_000)
    await gather(*(b.submit(i) for i in range(3)))
    assert fn.batches == [[0, 1, 2]]


async def test_full_queue_raises_overloaded(make: MakeBatcher) -> None:
    fn = Doubler(gated=True)
    b = await make(fn, max_queue=2)
    tasks = await fill_while_busy(b, fn, range(2))
    with pytest.raises(OverloadedError, match=r"queue is full \(2 .*retry later") as info:
        await soon(b.submit(99))
    assert info.value.retry_after_s > 0
    fn.gate.set()
    await gather(*tasks)
    assert 99 not in fn.seen


async def test_item_errors_fail_only_their_item(make: MakeBatcher) -> None:
    bad_input = BadRequestError("item 1 is bad")

    def fn(items: list[int]) -> list[int | BaseException]:
        out: dict[int, int | BaseException] = {1: bad_input, 2: ValueError("item 2 broke")}
        return [out.get(x, x * 2) for x in items]

    b = await make(fn, max_batch_size=4, max_delay_ms=60_000)
    results = await gather(*(b.submit(i) for i in range(4)), return_exceptions=True)
    assert results[1] is bad_input  # an InferdError reaches its submitter as is
    assert isinstance(results[2], ModelError)
    assert isinstance(results[2].__cause__, ValueError)
    assert [results[0][0], results[3][0]] == [0, 6]


async def test_batch_crash_fails_that_batch_and_loop_continues(
    make: MakeBatcher, caplog: pytest.LogCaptureFixture
) -> None:
    def fn(items: list[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("kaboom")
        return [x * 2 for x in items]

    b = await make(fn, max_batch_size=2, max_delay_ms=60_000)
    with caplog.at_level(logging.ERROR, logger="inferd.batching"):
        results = await gather(b.submit(13), b.submit(1), return_exceptions=True)
    for error in results:
        assert isinstance(error, ModelError)
        assert "failed while running a batch" in error.message
        assert isinstance(error.__cause__, RuntimeError)
    assert any(r.exc_info and r.name == "inferd.batching" for r in caplog.records)
    assert [r for r, _ in await gather(b.submit(2), b.submit(3))] == [4, 6]


async def test_wrong_result_count_fails_the_batch(make: MakeBatcher) -> None:
    b = await make(lambda items: items[:-1], max_batch_size=2, max_delay_ms=60_000)
    results = await gather(b.submit(1), b.submit(2), return_exceptions=True)
    assert all(isinstance(r, ModelError) for r in results)
    assert "1 results for 2 items" in str(results[0])


async def test_deadline_passes_while_queued(make: MakeBatcher) -> None:
    fn = Doubler(gated=True)
    b = await make(fn)
    tasks = await fill_while_busy(b, fn, range(0))
    late = asyncio.create_task(b.submit(7, deadline=time.monotonic() + 0.05))
    with pytest.raises(DeadlineExceededError, match="in the queue"):
        await soon(late)  # raised while the worker is still busy
    assert b.queue_depth == 0
    fn.gate.set()
    await gather(*tasks)
    assert 7 not in fn.seen


async def test_expired_item_is_skipped_when_batch_forms(make: MakeBatcher) -> None:
    fn = Doubler()
    b = await make(fn)
    await asyncio.sleep(0.01)  # the scheduler is idle, waiting for work
    task = asyncio.create_task(b.submit(7, deadline=time.monotonic() + 0.02))
    await asyncio.sleep(0)  # submit queues the item and wakes the scheduler ...
    time.sleep(0.1)  # ... which runs only after the deadline, before the deadline timer
    with pytest.raises(DeadlineExceededError, match="in the queue"):
        await soon(task)
    assert fn.batches == []


async def test_past_deadline_fails_at_once(make: MakeBatcher) -> None:
    fn = Doubler()
    b = await make(fn)
    with pytest.raises(DeadlineExceededError):
        await soon(b.submit(1, deadline=time.monotonic() - 1))
    assert fn.batches == []


async def test_cancelled_submit_is_removed_and_never_run(make: MakeBatcher) -> None:
    fn = Doubler(gated=True)
    b = await make(fn)
    tasks = await fill_while_busy(b, fn, range(3))
    tasks[2].cancel()  # item 1: its client went away
    with pytest.raises(asyncio.CancelledError):
        await soon(tasks[2])
    assert b.queue_depth == 2
    fn.gate.set()
    await gather(tasks[0], tasks[1], tasks[3])
    assert 1 not in fn.seen
    assert fn.batches == [[-1], [0, 2]]


async def cancel_item_1_as_its_batch_forms(b: Batcher[int, int]) -> None:
    """Queue 1, then 2 (which fills a batch of two and wakes the scheduler), and cancel 1's
    submit before the scheduler runs: 2 is answered (4), 1 is cancelled and never run."""
    gone = asyncio.create_task(b.submit(1))
    await until(lambda: b.queue_depth == 1)
    kept = asyncio.create_task(b.submit(2))
    await asyncio.sleep(0)  # submit(2) fills the batch and wakes the scheduler ...
    gone.cancel()  # ... which runs before the cancelled task can remove its item
    assert (await soon(kept))[0] == 4
    with pytest.raises(asyncio.CancelledError):
        await soon(gone)


async def test_item_cancelled_just_before_its_batch_forms_is_skipped(make: MakeBatcher) -> None:
    fn = Doubler()
    b = await make(fn, max_batch_size=2, max_delay_ms=60_000)
    await cancel_item_1_as_its_batch_forms(b)
    assert fn.batches == [[2]]


async def test_stop_drain_answers_queued_items(make: MakeBatcher) -> None:
    fn = Doubler(gated=True)
    b = await make(fn, max_batch_size=4, max_delay_ms=60_000)
    tasks = [asyncio.create_task(b.submit(i)) for i in range(3)]
    await until(lambda: b.queue_depth == 3)
    stopping = asyncio.create_task(b.stop(drain=True))
    await until(lambda: b.running == 1)  # queued items run now, not after the 60 s delay
    with pytest.raises(ModelNotReadyError):
        await soon(b.submit(5))
    assert not stopping.done()
    fn.gate.set()
    await asyncio.wait_for(stopping, 10)
    assert all(t.done() for t in tasks)
    assert [t.result()[0] for t in tasks] == [0, 2, 4]


async def test_stop_without_drain_fails_queued_items(make: MakeBatcher) -> None:
    fn = Doubler(gated=True)
    b = await make(fn)
    first, *queued = await fill_while_busy(b, fn, range(3))
    stopping = asyncio.create_task(b.stop(drain=False))
    for task in queued:
        with pytest.raises(ModelNotReadyError):
            await soon(task)
    assert not first.done()  # a running batch always finishes
    fn.gate.set()
    await asyncio.wait_for(stopping, 10)
    assert first.result()[0] == -2
    assert fn.batches == [[-1]]


async def test_submit_before_start_or_after_stop_is_not_ready(make: MakeBatcher) -> None:
    unstarted: Batcher[int, int] = Batcher(Doubler(), max_batch_size=2, max_delay_ms=0, max_queue=2)
    with pytest.raises(ModelNotReadyError):
        await soon(unstarted.submit(1))
    await soon(unstarted.stop())
    b = await make(Doubler())
    await soon(b.stop())
    with pytest.raises(ModelNotReadyError, match="not accepting"):
        await soon(b.submit(1))


async def test_on_batch_receives_each_batch_size(make: MakeBatcher) -> None:
    fn = Doubler(gated=True)
    sizes: list[int] = []
    b = await make(fn, max_batch_size=4, on_batch=sizes.append)
    tasks = await fill_while_busy(b, fn, range(6))
    fn.gate.set()
    await gather(*tasks)
    assert sizes == [1, 4, 2]


# -- a busy worker takes its next batch itself ----------------------------------------------


async def test_a_busy_worker_takes_the_next_batch_without_the_loop(make: MakeBatcher) -> None:
    fn = Doubler(gated=True)
    b = await make(fn, max_batch_size=2, inline_below_ms=0)
    tasks = await fill_while_busy(b, fn, range(5))  # -1 runs; 0..4 wait behind it
    fn.gate.set()
    time.sleep(0.3)  # the loop is blocked: only the worker can start the queued batches
    assert fn.batches == [[-1], [0, 1], [2, 3], [4]]
    assert await gather(*tasks) == [(-2, pytest.approx(0, abs=5))] + [
        (2 * i, pytest.approx(0, abs=5)) for i in range(5)
    ]
    assert b.running == 0


async def test_items_a_worker_finds_past_their_deadline_fail_alone(make: MakeBatcher) -> None:
    fn = Doubler(gated=True)
    b = await make(fn, max_batch_size=2, inline_below_ms=0)
    tasks = await fill_while_busy(b, fn, range(0))
    late = asyncio.create_task(b.submit(7, deadline=time.monotonic() + 0.05))
    fresh = asyncio.create_task(b.submit(8))
    await until(lambda: b.queue_depth == 2)
    time.sleep(0.1)  # 7's deadline passes before the loop can run its timer ...
    fn.gate.set()
    time.sleep(0.2)  # ... and the worker takes the queue: 8 runs, 7 is set aside
    with pytest.raises(DeadlineExceededError, match="in the queue"):
        await soon(late)
    assert (await soon(fresh))[0] == 16
    await gather(*tasks)
    assert 7 not in fn.seen


async def test_sizes_of_batches_a_worker_took_reach_on_batch(make: MakeBatcher) -> None:
    fn = Doubler(gated=True)
    sizes: list[int] = []
    b = await make(fn, max_batch_size=3, inline_below_ms=0, on_batch=sizes.append)
    tasks = await fill_while_busy(b, fn, range(5))
    fn.gate.set()
    await gather(*tasks)
    assert sizes == [1, 3, 2]


# -- cheap batches run inline, on the loop thread ------------------------------------------


def double(items: list[int]) -> list[int]:
    return [x * 2 for x in items]


class OnLoop:
    """run_batch that notes, per batch, whether it ran on the test's (the loop's) thread."""

    def __init__(self, fn: Callable[[list[int]], Any] = double) -> None:
        self.loop_thread = threading.current_thread()  # made inside the test, on the loop
        self.fn = fn
        self.inline: list[bool] = []
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int]) -> Any:
        self.inline.append(threading.current_thread() is self.loop_thread)
        self.batches.append(list(items))
        return self.fn(items)


async def warm_up(b: Batcher[int, int], size: int = 1) -> None:
    """The batches every batcher runs in its workers before it knows what a batch costs."""
    for start in range(100, 130, 10):
        await gather(*(b.submit(start + i) for i in range(size)))


async def test_cheap_batches_run_inline_after_warm_up(make: MakeBatcher) -> None:
    running: list[int] = []
    b: Batcher[int, int]

    def fn(items: list[int]) -> list[int]:
        running.append(b.running)
        return [x * 2 for x in items]

    model, sizes = OnLoop(fn), list[int]()
    b = await make(model, inline_below_ms=50, on_batch=sizes.append)
    for i in range(6):
        assert (await soon(b.submit(i)))[0] == i * 2
    assert model.inline == [False] * 3 + [True] * 3
    results = await gather(*(b.submit(i) for i in range(10)))  # one loop iteration: batched
    assert [r for r, _ in results] == [i * 2 for i in range(10)]
    assert model.batches[6:] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert model.inline[6:] == [True] * 3
    assert sizes == [1] * 6 + [4, 4, 2]
    assert running == [1] * 9
    assert b.running == 0


async def test_inline_batches_take_turns_with_the_rest_of_the_loop(make: MakeBatcher) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    seen: list[int] = []

    def fn(items: list[int]) -> list[int]:
        seen.append(ticks)
        return items

    model = OnLoop(fn)
    b = await make(model, inline_below_ms=50)
    await warm_up(b)
    ticking = asyncio.create_task(ticker())
    try:
        await gather(*(b.submit(i) for i in range(12)))
    finally:
        ticking.cancel()
    assert model.inline[3:] == [True] * 3
    assert seen[3] < seen[4] < seen[5]  # the loop ran between one inline batch and the next


async def test_zero_turns_inline_off(make: MakeBatcher) -> None:
    model = OnLoop()
    b = await make(model, inline_below_ms=0)
    for i in range(8):
        await soon(b.submit(i))
    assert model.inline == [False] * 8


async def test_slow_model_never_runs_on_the_loop(make: MakeBatcher) -> None:
    def fn(items: list[int]) -> list[int]:
        time.sleep(0.005)  # ten times the default threshold
        return items

    model = OnLoop(fn)
    b = await make(model)
    for i in range(6):
        await soon(b.submit(i))
    await gather(*(b.submit(i) for i in range(8)))
    assert len(model.inline) == 8
    assert not any(model.inline)


async def test_model_that_turns_slow_goes_back_to_threads_and_returns(make: MakeBatcher) -> None:
    slow = False

    def fn(items: list[int]) -> list[int]:
        if slow:
            time.sleep(0.1)  # ten times the threshold below
        return items

    model = OnLoop(fn)
    b = await make(model, inline_below_ms=10)
    for i in range(4):
        await soon(b.submit(i))
    slow = True
    for i in range(3):
        await soon(b.submit(i))
    # The first slow batch cannot be foreseen; it alone holds the loop.
    assert model.inline == [False] * 3 + [True, True, False, False]
    slow = False
    for i in range(20):
        await soon(b.submit(i))
        if model.inline[-1]:
            break
    assert model.inline[-1], "a model that is cheap again never went back inline"


async def test_batch_too_big_to_run_inline_goes_to_a_worker(make: MakeBatcher) -> None:
    def fn(items: list[int]) -> list[int]:
        time.sleep(0.005 * len(items))  # one item: 5 ms, 16 items: 80 ms
        return items

    model = OnLoop(fn)
    b = await make(model, max_batch_size=16, inline_below_ms=40)
    await warm_up(b)
    await soon(b.submit(0))
    await gather(*(b.submit(i) for i in range(16)))
    assert [len(batch) for batch in model.batches] == [1, 1, 1, 1, 16]
    assert model.inline == [False, False, False, True, False]


async def test_inline_item_and_batch_errors_fail_alone_and_loop_continues(
    make: MakeBatcher, caplog: pytest.LogCaptureFixture
) -> None:
    bad_input = BadRequestError("item 1 is bad")

    def fn(items: list[int]) -> Any:
        if 13 in items:
            raise RuntimeError("kaboom")
        if 14 in items:
            return items[:-1]
        if 15 in items:
            return None
        out: dict[int, int | BaseException] = {1: bad_input, 2: ValueError("item 2 broke")}
        return [out.get(x, x * 2) for x in items]

    model = OnLoop(fn)
    b = await make(model, inline_below_ms=50)
    await warm_up(b)
    results = await gather(*(b.submit(i) for i in range(4)), return_exceptions=True)
    assert results[1] is bad_input
    assert isinstance(results[2], ModelError)
    assert isinstance(results[2].__cause__, ValueError)
    assert [results[0][0], results[3][0]] == [0, 6]
    with caplog.at_level(logging.ERROR, logger="inferd.batching"):
        crashed = await gather(b.submit(13), b.submit(5), return_exceptions=True)
    for error in crashed:
        assert isinstance(error, ModelError)
        assert "failed while running a batch" in error.message
        assert isinstance(error.__cause__, RuntimeError)
    assert any(r.exc_info and r.name == "inferd.batching" for r in caplog.records)
    short = await gather(b.submit(14), b.submit(6), return_exceptions=True)
    assert all(isinstance(r, ModelError) for r in short)
    assert "1 results for 2 items" in str(short[0])
    with pytest.raises(ModelError, match="returned no results"):
        await soon(b.submit(15))
    assert (await soon(b.submit(3)))[0] == 6
    assert model.inline[3:] == [True] * 5


async def test_inline_batches_keep_deadlines_and_cancellation(make: MakeBatcher) -> None:
    model = OnLoop()
    b = await make(model, max_batch_size=2, max_delay_ms=60_000, inline_below_ms=50)
    await warm_up(b, size=2)
    later = time.monotonic() + 10
    assert [r for r, _ in await gather(b.submit(3, later), b.submit(4, later))] == [6, 8]
    # waits for a batch-mate, and its deadline passes while it waits in the queue
    with pytest.raises(DeadlineExceededError, match="in the queue"):
        await soon(b.submit(7, deadline=time.monotonic() + 0.05))
    await cancel_item_1_as_its_batch_forms(b)
    assert model.batches[3:] == [[3, 4], [2]]
    assert model.inline[3:] == [True, True]


async def test_expired_item_is_skipped_by_an_inline_batch(make: MakeBatcher) -> None:
    model = OnLoop()
    b = await make(model, inline_below_ms=50)
    await warm_up(b)
    task = asyncio.create_task(b.submit(7, deadline=time.monotonic() + 0.02))
    kept = asyncio.create_task(b.submit(8))
    await asyncio.sleep(0)  # both queue and the scheduler is woken ...
    time.sleep(0.1)  # ... and runs only after the deadline, before the deadline timer
    with pytest.raises(DeadlineExceededError, match="in the queue"):
        await soon(task)
    assert (await soon(kept))[0] == 16
    assert model.batches[3:] == [[8]]
    assert model.inline[3:] == [True]


async def test_inline_batcher_overloads_and_stops(make: MakeBatcher) -> None:
    model = OnLoop()
    b = await make(model, max_queue=2, max_batch_size=4, inline_below_ms=50)
    await warm_up(b)
    queued = [asyncio.create_task(b.submit(i)) for i in range(2)]
    await asyncio.sleep(0)  # both queue; the scheduler they woke runs after this test step
    with pytest.raises(OverloadedError) as info:
        await b.submit(99)  # in this step (soon() would run it in a task, after the scheduler)
    assert info.value.retry_after_s > 0
    assert [r for r, _ in await gather(*queued)] == [0, 2]
    held = [asyncio.create_task(b.submit(i)) for i in range(2)]
    await asyncio.sleep(0)
    await asyncio.wait_for(b.stop(drain=True), 10)
    assert [t.result()[0] for t in held] == [0, 2]
    assert model.inline[3:] == [True, True]


async def test_inline_below_ms_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="inline_below_ms"):
        Batcher(Doubler(), max_batch_size=2, max_delay_ms=0, max_queue=2, inline_below_ms=-1)


async def test_an_item_heavier_than_the_cheap_ones_goes_to_a_worker(make: MakeBatcher) -> None:
    """A model cheap for small inputs (run inline) is not trusted with a big one: the
    estimate is per unit of the item's weight (its input's bytes, when served), so a 4 MB
    text never holds the loop for seconds."""

    def fn(items: list[int]) -> list[int]:
        time.sleep(0.00002 * sum(items))  # 20 us per unit of weight
        return items

    model = OnLoop(fn)
    b = await make(model, inline_below_ms=5, weigh=float)
    await warm_up(b)  # items weigh 100-129: 2-3 ms each, in workers
    for weight in (10, 20, 30):
        await soon(b.submit(weight))
    assert model.inline[3:] == [True] * 3  # cheap: inline
    await soon(b.submit(5000))  # 100 ms by its weight
    assert model.inline[-1] is False
    for _ in range(20):  # the small ones go back inline once the estimates settle
        await soon(b.submit(10))
        if model.inline[-1]:
            break
    assert model.inline[-1] is True


async def test_a_batch_past_its_timeout_is_a_504_and_the_batcher_takes_no_more(
    make: MakeBatcher,
) -> None:
    release = threading.Event()
    hung: list[bool] = []

    def fn(items: list[int]) -> list[int]:
        if 13 in items:
            release.wait(10)  # a model call that does not come back
        return items

    b = await make(fn, inline_below_ms=0, batch_timeout_s=0.2, on_hung=lambda: hung.append(True))
    assert (await soon(b.submit(1)))[0] == 1
    stuck = asyncio.create_task(b.submit(13))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(b.submit(2))  # waits behind the hung batch (one worker)
    with pytest.raises(DeadlineExceededError, match=r"past its limit of 0\.2 s"):
        await asyncio.wait_for(stuck, 5)
    with pytest.raises(ModelNotReadyError, match="hung on a batch"):
        await asyncio.wait_for(queued, 5)
    assert hung == [True] and b.hung
    with pytest.raises(ModelNotReadyError, match="being restarted"):
        await b.submit(3)
    await asyncio.wait_for(b.stop(), 1)  # does not wait for the stuck thread
    release.set()


async def test_failed_items_leave_no_reference_cycles(make: MakeBatcher) -> None:
    """Each item that fails (here, past its deadline) must be freed by reference counting:
    the server runs with a lazy collector (gc.freeze, high thresholds), so a cycle per failed
    request grew its memory by hundreds of MiB under overload."""

    def slow(items: list[int]) -> list[int]:
        time.sleep(0.002)
        return items

    b = await make(slow, inline_below_ms=0, max_queue=1000)

    async def expires(i: int) -> None:
        with contextlib.suppress(DeadlineExceededError, OverloadedError):
            await b.submit(i, time.monotonic() + 0.0005)

    gc.collect()
    gc.disable()
    try:
        await gather(*(expires(i) for i in range(300)))
        assert gc.collect() == 0
    finally:
        gc.enable()


async def test_a_request_the_queue_cannot_serve_in_time_is_refused_at_once(
    make: MakeBatcher,
) -> None:
    def slow(items: list[int]) -> list[int]:
        time.sleep(0.02)
        return items

    b = await make(slow, inline_below_ms=0, max_batch_size=1)
    await gather(*(b.submit(i) for i in range(3)))  # timed: ~20 ms a batch
    queued = [asyncio.create_task(b.submit(i)) for i in range(10)]  # ~200 ms of work ahead
    await asyncio.sleep(0)
    with pytest.raises(OverloadedError, match="queued ahead of this request, past its deadline"):
        await b.submit(99, time.monotonic() + 0.05)
    assert (await b.submit(100, time.monotonic() + 5))[0] == 100  # time enough: taken
    await gather(*queued)
