"""`Batcher`: its public face (start, submit, stop) and its scheduling task on the loop.

Owns when a batch closes (``max_batch_size`` items, or ``max_delay_ms`` after the oldest; at
once when stopping) and where it runs: `_dispatch` runs it inline on the loop while the
run-time estimate says it is cheap (`running.py`), else hands it to a worker thread
(`workers.py`). Also owns admission: a full queue (``max_queue``) is refused with a
Retry-After, and an item whose deadline passed before it arrived is never queued. The
scheduler sleeps on one future and is woken only when its decision can change.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from inferd.batching.pending import ItemT, Pending, ResultT
from inferd.batching.running import WARMUP_BATCHES
from inferd.batching.watchdog import Watchdog
from inferd.errors import DeadlineExceededError, ModelNotReadyError, OverloadedError

logger = logging.getLogger("inferd.batching")

__all__ = ["Batcher"]

ADMISSION_MARGIN = 1.25
"""The queue's expected wait is stretched by this before it is held against a deadline: the
estimate is a recent average, and an item admitted just in time would often be late."""


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Batcher(Watchdog[ItemT, ResultT]):
    """Groups items submitted on one event loop into batches run by ``run_batch`` in threads
    (or inline on the loop, for a model measured to be cheap: see `running.py`)."""

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
        weigh: Callable[[ItemT], float] | None = None,
        batch_timeout_s: float | None = None,
        on_hung: Callable[[], None] | None = None,
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
        self._queue: deque[Pending[ItemT, ResultT]] = deque()
        self._lock = threading.Lock()  # taking items: the loop and the workers both do
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"inferd-{self._name}")
        self._in_workers = {}
        self._batch_timeout_s = batch_timeout_s
        self._on_hung = on_hung
        self.hung = False
        """A batch ran past `batch_timeout_s`: this batcher takes nothing more."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None  # the scheduler sleeps on this
        self._running = 0
        self._accepting = False
        self._stopping = False
        self._inline_below_s = inline_below_ms / 1000.0
        self._timed = 0  # batches whose run time is in the two estimates below
        self._batch_s = 0.0  # smoothed run time of one batch (inline choice, Retry-After)
        self._weigh = weigh
        """An item's work (its input's size, say), so a big item is never run inline."""
        self._unit_s = 0.0  # smoothed run time per unit of work (per item without `weigh`)

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
        self._watch_batches()

    def admit(self, deadline: float | None = None) -> float:
        """Refuse at once what cannot be served: the batcher is not taking items (503), its
        queue is full, or the work queued ahead would outlast the deadline (429, so it is
        neither left to expire nor run for nothing). Cheap: callers check it before decoding
        a request's body. The time it checked at."""
        if self._loop is None or not self._accepting:
            state = "stopping" if self._stopping else "not started"
            if self.hung:
                state = "it hung on a batch and is being restarted"
            raise ModelNotReadyError(
                f"{self._name} is not accepting requests ({state}); retry once the model is loaded"
            )
        if len(self._queue) >= self._max_queue:
            raise OverloadedError(
                f"{self._name}: the request queue is full ({self._max_queue} requests waiting); "
                "retry later or send fewer requests at once",
                retry_after_s=self._retry_after(),
            )
        now = time.monotonic()
        if deadline is None:
            return now
        if deadline <= now:
            raise DeadlineExceededError(
                f"{self._name}: the request's deadline had already passed when it arrived; "
                "send it with a later deadline"
            )
        wait = self._expected_wait_s() * ADMISSION_MARGIN
        if self._timed and now + wait > deadline:
            raise OverloadedError(
                f"{self._name}: about {wait * 1000:.0f} ms of work is queued ahead of this "
                f"request, past its deadline ({(deadline - now) * 1000:.0f} ms left); retry "
                "later or allow a longer deadline",
                retry_after_s=self._retry_after(),
            )
        return now

    async def submit(self, item: ItemT, deadline: float | None = None) -> tuple[ResultT, float]:
        """Run ``item`` in some batch; return its result and the seconds it waited in the queue.

        ``deadline`` is an absolute ``time.monotonic()`` value.
        """
        now = self.admit(deadline)
        loop = self._loop
        assert loop is not None
        queue = self._queue
        future: asyncio.Future[tuple[ResultT, float]] = loop.create_future()
        units = 1.0 if self._weigh is None else max(1.0, self._weigh(item))
        pending = Pending(item, now, deadline, future, units)
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
            # A failed future holds its exception, whose traceback holds this frame: let go
            # of the future, or each failed item is a cycle only a full collection frees.
            del future, pending

    async def stop(self, drain: bool = True) -> None:
        """Stop accepting; run (``drain``) or fail the queued items; wait for running batches
        (not for a hung one: its thread is left behind)."""
        self._accepting = False
        self._stopping = True
        if self.hung:
            if self._task is not None:
                self._task.cancel()
            self._executor.shutdown(wait=False, cancel_futures=True)
            return
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

    def _dispatch(self) -> bool:
        """Take up to max_batch_size live items off the queue and run them; True if inline."""
        now = time.monotonic()
        batch, late = self._take(now)
        self._fail_late(late, now)
        if not batch:
            return False
        self._running += 1
        self._count_batch(len(batch))
        if (  # known to be cheap, for a batch of this size and these items too
            self._timed >= WARMUP_BATCHES
            and max(self._batch_s, self._unit_s * sum(p.units for p in batch))
            < self._inline_below_s
        ):
            outcome, seconds = self._run_timed([pending.item for pending in batch])
            self._running -= 1
            self._answer(batch, now, outcome, seconds)
            return True
        self._hand_to_worker(batch, now)
        return False
