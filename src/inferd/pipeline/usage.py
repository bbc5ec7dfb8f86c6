"""The CPU time a batch used: what the cost and energy of its predictions are computed from.

A batch's CPU time is the process's CPU time while it ran, shared equally among the batches
running at the same moment (several models' workers, or one model's, can overlap). The
process clock counts every thread, so ONNX Runtime's own intra-op threads are included, and
so is what the server did meanwhile for the requests being served (HTTP, codecs); CPU time
spent while no batch runs is left out. Two clock reads and a lock per batch: cheap enough for
every batch (`bench/monitor.py` measures it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CpuShare:
    """Process CPU seconds, integrated as each running batch's share.

    `shared` grows by (CPU used)/(batches running) between any two starts or ends, so the
    difference of `shared` between a batch's start and end is exactly its share."""

    __slots__ = ("_clock", "_last", "_lock", "_running", "_shared")

    def __init__(self, clock: Callable[[], float] = time.process_time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._running = 0
        self._last = 0.0
        self._shared = 0.0

    def _advance(self) -> float:
        """Add the CPU used since the last event to the running batches' shares (lock held)."""
        now = self._clock()
        if self._running:
            self._shared += (now - self._last) / self._running
        self._last = now
        return self._shared

    def start(self) -> float:
        """A batch starts: the mark its `stop` is measured from."""
        with self._lock:
            mark = self._advance()
            self._running += 1
            return mark

    def stop(self, mark: float) -> float:
        """The batch that started at `mark` ended: its share of the CPU, in seconds."""
        with self._lock:
            used = self._advance() - mark
            self._running -= 1
            return used


PROCESS_CPU = CpuShare()
"""One per process: every batch of every model is measured against the same clock."""
