"""The batcher's watchdog: a batch that runs past its model's limit is a hung model.

A backend call that never returns (a deadlock in a custom model, a driver that stopped
answering) cannot be interrupted from Python. What can be done is not to wait on it: past
``batch_timeout_s`` its items are answered 504, everything queued 503, the batcher takes
nothing more, and ``on_hung`` tells its owner (the repository restarts the model in the
background). The stuck thread is left behind. Checked on the loop, a few times per limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from inferd.batching.pending import ItemT, Pending, ResultT
from inferd.batching.workers import WorkerThreads
from inferd.errors import DeadlineExceededError

logger = logging.getLogger("inferd.batching")


class Watchdog(WorkerThreads[ItemT, ResultT]):
    """The hung-batch check of `Batcher` (its base class; `Batcher.__init__` sets the state
    annotated here)."""

    _batch_timeout_s: float | None
    _on_hung: Callable[[], None] | None
    _accepting: bool
    hung: bool

    def _watch_batches(self) -> None:
        """Look at the running batches now, and again a few times per limit."""
        timeout = self._batch_timeout_s
        loop = self._loop
        if timeout is None or loop is None or self.hung or self._stopping:
            return
        now = time.monotonic()
        for batch, started in list(self._in_workers.values()):
            if now - started > timeout:
                self._hung(batch, now - started, timeout)
                return
        loop.call_later(min(1.0, timeout / 4), self._watch_batches)

    def _hung(self, batch: list[Pending[ItemT, ResultT]], seconds: float, timeout: float) -> None:
        self.hung = True
        self._accepting = False
        logger.error(
            "%s: a batch of %d has run %.1f s, past runtime.batch_timeout_s (%g s): the model "
            "is hung; failing its requests and restarting it",
            self._name,
            len(batch),
            seconds,
            timeout,
        )
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(
                    DeadlineExceededError(
                        f"{self._name}: the model ran {seconds:.0f} s on this request's batch, "
                        f"past its limit of {timeout:g} s (runtime.batch_timeout_s); it is "
                        "being restarted: retry in a moment"
                    )
                )
        self._fail_queued(f"{self._name} hung on a batch and is being restarted; retry it")
        if self._on_hung is not None:
            try:
                self._on_hung()
            except Exception:
                logger.exception("%s: the on_hung callback failed", self._name)


__all__ = ["Watchdog"]
