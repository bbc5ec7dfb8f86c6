"""The batcher's queue of submitted items and their deadlines.

Owns `Pending`, the record of one submitted item, and the part of `Batcher` that looks after
items while they wait: taking a batch's worth off the queue (both the loop and the worker
threads do, hence the lock), dropping an item whose client went away, failing an item whose
deadline passed (queued, or running in a batch), and failing everything queued when the
batcher stops or its scheduling task crashes. Apart from the scheduling (`batcher.py`) because
none of it decides when or where a batch runs: it only keeps each item's own future honest.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from typing import Generic, TypeVar

from inferd.errors import DeadlineExceededError, ModelNotReadyError

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class Pending(Generic[ItemT, ResultT]):
    """One submitted item. Compared by identity, so ``deque.remove`` never compares items."""

    __slots__ = ("deadline", "enqueued", "future", "item", "started", "units")

    def __init__(
        self,
        item: ItemT,
        enqueued: float,
        deadline: float | None,
        future: asyncio.Future[tuple[ResultT, float]],
        units: float = 1.0,
    ) -> None:
        self.item = item
        self.units = units
        """The item's work, in the batcher's `weigh` units (1 without one)."""
        self.enqueued = enqueued
        self.deadline = deadline
        self.future = future
        self.started: float | None = None  # set when its batch starts; None while queued


class PendingQueue(Generic[ItemT, ResultT]):
    """The queue and deadline bookkeeping of `Batcher` (its base class; `Batcher.__init__`
    sets the state annotated here)."""

    _name: str
    _max_batch: int
    _queue: deque[Pending[ItemT, ResultT]]
    _lock: threading.Lock

    def _fail_queued(self, message: str) -> None:
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
        for pending in queued:
            if not pending.future.done():
                pending.future.set_exception(ModelNotReadyError(message))

    def _take(
        self, now: float
    ) -> tuple[list[Pending[ItemT, ResultT]], list[Pending[ItemT, ResultT]]]:
        """Up to max_batch_size live items off the queue, and the ones whose deadline passed
        (the caller fails those on the loop). Called from the loop and from workers."""
        batch: list[Pending[ItemT, ResultT]] = []
        late: list[Pending[ItemT, ResultT]] = []
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

    def _fail_late(self, late: list[Pending[ItemT, ResultT]], now: float) -> None:
        for pending in late:
            if not pending.future.done():
                pending.future.set_exception(DeadlineExceededError(self._late(pending, now)))

    # -- deadlines, cancellation -----------------------------------------------------------

    def _expire(self, pending: Pending[ItemT, ResultT]) -> None:
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

    def _late(self, pending: Pending[ItemT, ResultT], now: float, extra: str = "") -> str:
        budget = (pending.deadline or 0.0) - pending.enqueued
        return (
            f"{self._name}: the request waited {(now - pending.enqueued) * 1000:.0f} ms in the "
            f"queue{extra}, the deadline was {budget * 1000:.0f} ms; allow a longer deadline "
            "or retry when the server is less busy"
        )

    def _discard(self, pending: Pending[ItemT, ResultT]) -> None:
        if pending.started is None:
            with self._lock, contextlib.suppress(ValueError):  # already taken by a batch or stop
                self._queue.remove(pending)  # O(n), but only on cancel or expiry
