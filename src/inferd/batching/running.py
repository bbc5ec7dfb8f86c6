"""Running one batch and answering its items, and what the batcher learns from each run.

Owns the part of `Batcher` that is the same wherever a batch runs, in a worker thread or
inline on the loop: calling ``run_batch`` (its error fails the batch, never the caller),
turning its results into each item's outcome (a bad item fails alone; a wrong count or a
raised error fails the batch), the ``on_batch`` count, and the smoothed run-time estimates
that the scheduler (`batcher.py`) reads to choose inline or a worker, and that set the
Retry-After of a full queue.

Why inline at all: for a model whose batch takes tens of microseconds, the two thread
hand-offs (waking a worker, calling back into the loop) and the GIL passing between the
threads cost more than the model. A batch runs inline only after `WARMUP_BATCHES` measured
batches and while the estimate for a batch of that size is under ``inline_below_ms``; a model
that turns slow is back in the workers after a batch or a few, so the loop is never held for
long. The default, 0.5 ms, bounds the stall an inline batch causes to about what the loop
spends on a few requests' HTTP and JSON; a hand-off costs 0.1-0.2 ms of CPU per batch on a
small machine, and above the threshold a worker's overlap with the loop (a model that
releases the GIL runs beside it) is worth that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from inferd.batching.pending import ItemT, Pending, PendingQueue, ResultT
from inferd.errors import InferdError, ModelError

Outcome = Sequence[ResultT | BaseException] | BaseException  # run_batch's results, or its error

logger = logging.getLogger("inferd.batching")

WARMUP_BATCHES = 3  # batches measured in the workers before any may run inline
SMOOTHING = 0.2  # weight of the newest batch in the run-time estimates


class BatchRunner(PendingQueue[ItemT, ResultT]):
    """Runs and answers the batches of `Batcher` (its base class; `Batcher.__init__` sets the
    state annotated here)."""

    _run_batch: Callable[[list[ItemT]], Sequence[ResultT | BaseException]]
    _on_batch: Callable[[int], None] | None
    _workers: int
    _inline_below_s: float
    _timed: int
    _batch_s: float
    _unit_s: float

    def _count_batch(self, size: int) -> None:
        if self._on_batch is not None:
            try:
                self._on_batch(size)
            except Exception:
                logger.exception("%s: the on_batch callback failed", self._name)

    def _run_timed(self, items: list[ItemT]) -> tuple[Outcome[ResultT], float]:
        """Run one batch (in a worker or inline); its results or its error, and its run time."""
        start = time.perf_counter()
        try:
            outcome: Outcome[ResultT] = self._run_batch(items)
        except Exception as exc:  # fails this batch, never the scheduler or the worker
            outcome = exc
        return outcome, time.perf_counter() - start

    def _answer(
        self,
        batch: list[Pending[ItemT, ResultT]],
        started: float,
        results: Outcome[ResultT],
        seconds: float | None,
    ) -> None:
        """Answer each item of a finished batch, on the loop thread; learn its run time."""
        if seconds is not None:
            self._timed += 1
            weight = max(SMOOTHING, 1 / self._timed)  # a plain mean of the first few
            self._batch_s += weight * (seconds - self._batch_s)
            units = sum(pending.units for pending in batch) or 1.0
            self._unit_s += weight * (seconds / units - self._unit_s)
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
        self, batch: list[Pending[ItemT, ResultT]], detail: str, cause: BaseException | None
    ) -> None:
        for pending in batch:
            if not pending.future.done():
                error = ModelError(
                    f"{self._name}: the model failed while running a batch of {len(batch)} "
                    f"requests ({detail}); the server log has the traceback"
                )
                error.__cause__ = cause
                pending.future.set_exception(error)

    def _expected_wait_s(self) -> float:
        """Seconds an item queued now would likely take to be answered: the batches ahead
        of it and its own, at the recent batch time (0 before any batch was timed)."""
        batches_ahead = len(self._queue) / self._max_batch + 1
        return batches_ahead * self._batch_s / self._workers

    def _retry_after(self) -> float:
        """Seconds until the queue has likely room."""
        if not self._timed:
            return 1.0
        return min(60.0, max(0.1, self._expected_wait_s()))
