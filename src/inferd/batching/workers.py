"""The batcher's worker threads: where a batch runs unless it is known to be cheap.

Owns the part of `Batcher` that runs off the event loop. A worker runs its batch, posts the
outcome back to the loop (which answers the items: futures belong to the loop thread), and,
while more items are ready, takes the next batch itself rather than waiting for the loop to
hand it one. Apart from the scheduling (`batcher.py`) because this is the only code that runs
in another thread; what it shares with the loop is the queue (under its lock, `pending.py`)
and the `_worker_done` call it schedules with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from inferd.batching.pending import ItemT, Pending, ResultT
from inferd.batching.running import BatchRunner, Outcome


class WorkerThreads(BatchRunner[ItemT, ResultT]):
    """The worker side of `Batcher` (its base class; `Batcher.__init__` sets the state
    annotated here)."""

    _executor: ThreadPoolExecutor
    _in_workers: dict[int, tuple[list[Pending[ItemT, ResultT]], float]]
    """The batches running in workers now (by id), with when each started: the watchdog's."""
    _loop: asyncio.AbstractEventLoop | None
    _delay_s: float
    _stopping: bool
    _running: int  # batches running now; only the loop thread changes it

    if TYPE_CHECKING:

        def _wake(self) -> None:
            """Wake the scheduling task (`Batcher._wake`)."""

    def _hand_to_worker(self, batch: list[Pending[ItemT, ResultT]], started: float) -> None:
        self._in_workers[id(batch)] = (batch, started)
        self._executor.submit(self._work, batch, started)

    def _work(self, batch: list[Pending[ItemT, ResultT]], started: float) -> None:
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
        batch: list[Pending[ItemT, ResultT]],
        started: float,
        outcome: Outcome[ResultT],
        seconds: float | None,
        following: list[Pending[ItemT, ResultT]],
        late: list[Pending[ItemT, ResultT]],
        taken_at: float,
    ) -> None:
        """On the loop: a worker finished a batch (and maybe took the next one itself)."""
        self._in_workers.pop(id(batch), None)
        if following:
            self._in_workers[id(following)] = (following, taken_at)
            self._count_batch(len(following))
        else:
            self._running -= 1
            self._wake()
        self._fail_late(late, taken_at)
        self._answer(batch, started, outcome, seconds)
