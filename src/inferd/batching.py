"""Dynamic batching for one model version: concurrent requests in, batches out.

The server's event loop submits single items; one scheduling task groups them (up to
``max_batch_size``, or whatever arrived within ``max_delay_ms`` of the oldest) and runs each
group with a plain function in worker threads, so model code never sees asyncio and this
module never sees a model. Every item keeps its own future: a bad item, a passed deadline or
a disconnected client fails that item alone, never its batch-mates.

A batch that is known to be cheap runs on the loop thread instead ("inline"): for a model
whose batch takes tens of microseconds, the two thread hand-offs (waking a worker, calling back
into the loop) and the GIL passing between the threads cost more than the model. The batcher
smooths each batch's run time and runs a batch inline only after a few measured batches and
while the estimate for a batch of that size is under ``inline_below_ms``; a model that turns
slow is back in the workers after a batch or a few, so the loop is never held for long.
The default, 0.5 ms, bounds the stall an inline batch causes to about what the loop spends on
a few requests' HTTP and JSON; a hand-off costs 0.1-0.2 ms of CPU per batch on a small
machine, and above the threshold a worker's overlap with the loop (a model that releases the
GIL runs beside it) is worth that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from inferd.errors import (
    DeadlineExceededError,
    InferdError,
    ModelError,
    ModelNotReadyError,
    OverloadedError,
)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
_Outcome = Sequence[ResultT | BaseException] | BaseException  # run_batch's results, or its error

logger = logging.getLogger("inferd.batching")

_WARMUP_BATCHES = 3  # batches measured in the workers before any may run inline
_SMOOTHING = 0.2  # weight of the newest batch in the run-time estimates

__all__ = ["Batcher"]


class _Pending(Generic[ItemT, ResultT]):
    """One submitted item. Compared by identity, so ``deque.remove`` never compares items."""

    __slots__ = ("deadline", "enqueued", "future", "item", "started")

    def __init__(
        self,
        item: ItemT,
        enqueued: float,
        deadline: float | None,
        future: asyncio.Future[tuple[ResultT, float]],
    ) -> None:
        self.item = item
        self.enqueued = enqueued
        self.deadline = deadline
        self.future = future
        self.started: float | None = None  # set when its batch starts; None while queued


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Batcher(Generic[ItemT, ResultT]):
    """Groups items submitted on one event loop into batches run by ``run_batch`` in threads
    (or inline on the loop, for a model measured to be cheap: see the module docstring)."""

    def __init__(
        self,
        run_batch: Callable[[list[ItemT]], Sequence[ResultT | BaseException]],
        *,
        max_batch_size: int,
        max_delay_ms: float,
        max_queue: int,
        workers: int = 1,
        on_batch: Callable[[int], None] | None = None,
        name: str = "",
        inline_below_ms: float = 0.5,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be 0 or more, got {max_delay_ms}")
        if inline_below_ms < 0:
            raise ValueError(f"inline_below_ms must be 0 (off) or more, got {inline_below_ms}")
        self._run_batch = run_batch
        self._max_batch = max(1, max_batch_size)
        self._delay_s = max_delay_ms / 1000.0
        self._max_queue = max_queue
        self._workers = workers
        self._on_batch = on_batch
        self._name = name or "batcher"
        self._queue: deque[_Pending[ItemT, ResultT]] = deque()
        self._lock = threading.Lock()  # taking items: the loop and the workers both do
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"inferd-{self._name}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None  # the scheduler sleeps on this
        self._running = 0
        self._accepting = False
        self._stopping = False
        self._inline_below_s = inline_below_ms / 1000.0
        self._timed = 0  # batches whose run time is in the two estimates below
        self._batch_s = 0.0  # smoothed run time of one batch (inline choice, Retry-After)
        self._item_s = 0.0  # smoothed run time per item, so a big batch is not run inline

    @property
    def queue_depth(self) -> int:
        """Items waiting now (not counting those in running batches)."""
        return len(self._queue)

    @property
    def running(self) -> int:
        """Batches running now."""
        return self._running

    async def start(self) -> None:
        """Start the scheduling task on the running loop; submit works from then on."""
        if self._stopping:
            raise RuntimeError(f"{self._name} was stopped and cannot restart; make a new Batcher")
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._accepting = True
        self._task = self._loop.create_task(self._schedule(), name=f"inferd-{self._name}")

    async def submit(self, item: ItemT, deadline: float | None = None) -> tuple[ResultT, float]:
        """Run ``item`` in some batch; return its result and the seconds it waited in the queue.

        ``deadline`` is an absolute ``time.monotonic()`` value.
        """
        loop = self._loop
        if loop is None or not self._accepting:
            state = "stopping" if self._stopping else "not started"
            raise ModelNotReadyError(
                f"{self._name} is not accepting requests ({state}); retry once the model is loaded"
            )
        queue = self._queue
        if len(queue) >= self._max_queue:
            raise OverloadedError(
                f"{self._name}: the request queue is full ({self._max_queue} requests waiting); "
                "retry later or send fewer requests at once",
                retry_after_s=self._retry_after(),
            )
        now = time.monotonic()
        if deadline is not None and deadline <= now:
            raise DeadlineExceededError(
                f"{self._name}: the request's deadline had already passed when it arrived; "
                "send it with a later deadline"
            )
        future: asyncio.Future[tuple[ResultT, float]] = loop.create_future()
        pending = _Pending(item, now, deadline, future)
        queue.append(pending)
        # Wake the scheduler only when its decision can change: a first item arms the
        # max-delay timer, a full batch closes it. A busy scheduler is woken when a worker is free.
        if self._running < self._workers and (len(queue) == 1 or len(queue) >= self._max_batch):
            self._wake()
        timer = None if deadline is None else loop.call_later(deadline - now, self._expire, pending)
        try:
            return await future
        except asyncio.CancelledError:  # the client went away: never run its item
            self._discard(pending)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def stop(self, drain: bool = True) -> None:
        """Stop accepting; run (``drain``) or fail the queued items; wait for running batches."""
        self._accepting = False
        self._stopping = True
        if not drain:
            self._fail_queued(f"{self._name} was stopped before this request ran; retry it")
        self._wake()
        if self._task is not None:
            await asyncio.shield(self._task)  # a cancelled stop() must not kill the scheduler
        self._executor.shutdown(wait=False)

    # -- the scheduling task -------------------------------------------------------------

    async def _schedule(self) -> None:
        queue = self._queue
        try:
            while True:
                if self._running >= self._workers:
                    await self._sleep(None)  # _worker_done wakes us
                elif not queue:
                    if self._stopping and self._running == 0:
                        return
                    await self._sleep(None)  # submit or _worker_done wakes us
                elif (
                    len(queue) < self._max_batch
                    and self._delay_s > 0
                    and not self._stopping  # nothing more will come: do not wait to fill
                    and (close_at := queue[0].enqueued + self._delay_s) > time.monotonic()
                ):
                    await self._sleep(close_at)
                elif self._dispatch():
                    await asyncio.sleep(0)  # ran inline: let the loop run before the next one
        except Exception:  # a bug here must not leave submitters waiting forever
            logger.exception("%s: the batching loop crashed; failing queued requests", self._name)
            self._accepting = False
            self._fail_queued(f"{self._name}: the batching loop crashed; retry later")

    def _fail_queued(self, message: str) -> None:
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
        for pending in queued:
            if not pending.future.done():
                pending.future.set_exception(ModelNotReadyError(message))

    async def _sleep(self, until: float | None) -> None:
        """Wait for a wake-up, or until the monotonic time ``until``; one future, one timer."""
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiter = waiter
        timer = None
        if until is not None:
            timer = self._loop.call_later(until - time.monotonic(), _resolve, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    def _take(
        self, now: float
    ) -> tuple[list[_Pending[ItemT, ResultT]], list[_Pending[ItemT, ResultT]]]:
        """Up to max_batch_size live items off the queue, and the ones whose deadline passed
        (the caller fails those on the loop). Called from the loop and from workers."""
        batch: list[_Pending[ItemT, ResultT]] = []
        late: list[_Pending[ItemT, ResultT]] = []
        with self._lock:
            queue = self._queue
            while queue and len(batch) < self._max_batch:
                pending = queue.popleft()
                if pending.future.done():  # cancelled or expired, not yet removed
                    continue
                if pending.deadline is not None and pending.deadline <= now:
                    late.append(pending)
                    continue
                pending.started = now
                batch.append(pending)
        return batch, late

    def _dispatch(self) -> bool:
        """Take up to max_batch_size live items off the queue and run them; True if inline."""
        now = time.monotonic()
        batch, late = self._take(now)
        self._fail_late(late, now)
        if not batch:
            return False
        self._running += 1
        self._count_batch(len(batch))
        if (  # known to be cheap, for a batch of this size too
            self._timed >= _WARMUP_BATCHES
            and max(self._batch_s, self._item_s * len(batch)) < self._inline_below_s
        ):
            outcome, seconds = self._run_timed([pending.item for pending in batch])
            self._running -= 1
            self._answer(batch, now, outcome, seconds)
            return True
        self._executor.submit(self._work, batch, now)
        return False

    def _work(self, batch: list[_Pending[ItemT, ResultT]], started: float) -> None:
        """A worker thread: run the batch, and while more items are ready take the next batch
        itself. A busy model's worker then never waits for the loop to hand it work: waking a
        thread and getting the GIL back from a busy loop cost ~1-2 ms a batch, measured."""
        assert self._loop is not None
        loop = self._loop
        while True:
            try:
                outcome, seconds = self._run_timed([pending.item for pending in batch])
            except BaseException as exc:  # posted to the loop, which fails the batch
                outcome, seconds = exc, None
            now = time.monotonic()
            following, late = self._take(now) if self._ready(now) else ([], [])
            try:
                loop.call_soon_threadsafe(
                    self._worker_done, batch, started, outcome, seconds, following, late, now
                )
            except RuntimeError:  # the loop is closed: the server is gone, nobody is waiting
                return
            if not following:
                return
            batch, started = following, now

    def _ready(self, now: float) -> bool:
        """Whether a batch may close now, seen from a worker (the loop's timer does the rest)."""
        queue = self._queue
        if not queue:
            return False
        if self._delay_s == 0 or self._stopping or len(queue) >= self._max_batch:
            return True
        return queue[0].enqueued + self._delay_s <= now

    def _worker_done(
        self,
        batch: list[_Pending[ItemT, ResultT]],
        started: float,
        outcome: _Outcome[ResultT],
        seconds: float | None,
        following: list[_Pending[ItemT, ResultT]],
        late: list[_Pending[ItemT, ResultT]],
        taken_at: float,
    ) -> None:
        """On the loop: a worker finished a batch (and maybe took the next one itself)."""
        if following:
            self._count_batch(len(following))
        else:
            self._running -= 1
            self._wake()
        self._fail_late(late, taken_at)
        self._answer(batch, started, outcome, seconds)

    def _count_batch(self, size: int) -> None:
        if self._on_batch is not None:
            try:
                self._on_batch(size)
            except Exception:
                logger.exception("%s: the on_batch callback failed", self._name)

    def _fail_late(self, late: list[_Pending[ItemT, ResultT]], now: float) -> None:
        for pending in late:
            if not pending.future.done():
                pending.future.set_exception(DeadlineExceededError(self._late(pending, now)))

    def _run_timed(self, items: list[ItemT]) -> tuple[_Outcome[ResultT], float]:
        """Run one batch (in a worker or inline); its results or its error, and its run time."""
        start = time.perf_counter()
        try:
            outcome: _Outcome[ResultT] = self._run_batch(items)
        except Exception as exc:  # fails this batch, never the scheduler or the worker
            outcome = exc
        return outcome, time.perf_counter() - start

    def _answer(
        self,
        batch: list[_Pending[ItemT, ResultT]],
        started: float,
        results: _Outcome[ResultT],
        seconds: float | None,
    ) -> None:
        """Answer each item of a finished batch, on the loop thread; learn its run time."""
        if seconds is not None:
            self._timed += 1
            weight = max(_SMOOTHING, 1 / self._timed)  # a plain mean of the first few
            self._batch_s += weight * (seconds - self._batch_s)
            self._item_s += weight * (seconds / len(batch) - self._item_s)
        if isinstance(results, BaseException):
            logger.error(
                "%s: the model failed while running a batch of %d",
                self._name,
                len(batch),
                exc_info=results,
            )
            self._fail_batch(batch, repr(results), results)
            return
        count = len(results) if hasattr(results, "__len__") else "no"
        if count != len(batch):
            detail = f"run_batch returned {count} results for {len(batch)} items"
            logger.error("%s: the model failed while running a batch: %s", self._name, detail)
            self._fail_batch(batch, detail, None)
            return
        for pending, result in zip(batch, results, strict=True):
            future = pending.future
            if future.done():  # cancelled or past its deadline while running
                continue
            if isinstance(result, InferdError):
                future.set_exception(result)
            elif isinstance(result, BaseException):
                logger.error("%s: the model failed on one item", self._name, exc_info=result)
                error = ModelError(
                    f"{self._name}: the model failed on this request ({result!r}); "
                    "the server log has the traceback"
                )
                error.__cause__ = result
                future.set_exception(error)
            else:
                future.set_result((result, started - pending.enqueued))

    def _fail_batch(
        self, batch: list[_Pending[ItemT, ResultT]], detail: str, cause: BaseException | None
    ) -> None:
        for pending in batch:
            if not pending.future.done():
                error = ModelError(
                    f"{self._name}: the model failed while running a batch of {len(batch)} "
                    f"requests ({detail}); the server log has the traceback"
                )
                error.__cause__ = cause
                pending.future.set_exception(error)

    # -- deadlines, cancellation, back-pressure ----------------------------------------

    def _expire(self, pending: _Pending[ItemT, ResultT]) -> None:
        """The item's deadline timer: fail it now, whether it is queued or running."""
        if pending.future.done():
            return
        now = time.monotonic()
        if pending.started is None:
            self._discard(pending)
            message = self._late(pending, now)
        else:
            message = self._late(pending, pending.started, " and its batch was still running")
        pending.future.set_exception(DeadlineExceededError(message))

    def _late(self, pending: _Pending[ItemT, ResultT], now: float, extra: str = "") -> str:
        budget = (pending.deadline or 0.0) - pending.enqueued
        return (
            f"{self._name}: the request waited {(now - pending.enqueued) * 1000:.0f} ms in the "
            f"queue{extra}, the deadline was {budget * 1000:.0f} ms; allow a longer deadline "
            "or retry when the server is less busy"
        )

    def _discard(self, pending: _Pending[ItemT, ResultT]) -> None:
        if pending.started is None:
            with self._lock, contextlib.suppress(ValueError):  # already taken by a batch or stop
                self._queue.remove(pending)  # O(n), but only on cancel or expiry

    def _retry_after(self) -> float:
        """Seconds until the queue has likely room: batches ahead x recent batch time."""
        if not self._timed:
            return 1.0
        batches_ahead = len(self._queue) / self._max_batch + 1
        return min(60.0, max(0.1, batches_ahead * self._batch_s / self._workers))
