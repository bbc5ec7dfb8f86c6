"""What a phase is (one load level, as each worker runs its share) and when things in it happen."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

Mode = Literal["closed", "open", "offline"]


@dataclass(frozen=True)
class Phase:
    """One load level as a worker runs it; the parent gives each worker its share."""

    label: str
    mode: Mode
    concurrency: int = 1  # closed: streams; open and offline: connections at most
    rate: float = 0.0  # open: arrivals per second
    requests: int | None = None  # closed: exactly this many (no duration); offline: the batch
    warmup_s: float = 0.0
    duration_s: float = 0.0
    timeout_s: float = 30.0
    seed: int = 0
    start_at: float = 0.0  # perf_counter time to begin; 0 = at once

    def share(self, index: int, workers: int) -> Phase:
        """Worker `index`'s part: connections and requests split evenly, the rate divided
        (independent Poisson streams of rate r/n add up to one of rate r)."""

        def part(total: int) -> int:
            return total // workers + (1 if index < total % workers else 0)

        requests = None if self.requests is None else part(self.requests)
        concurrency = part(self.concurrency)
        if self.mode == "open":
            concurrency = max(concurrency, 1)
        return replace(
            self,
            concurrency=concurrency,
            rate=self.rate / workers,
            requests=requests,
            seed=self.seed + 7919 * index,
        )


def poisson_arrivals(
    rate: float, duration_s: float, seed: int
) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    """Arrival offsets (seconds from 0) of a Poisson process of `rate` over `duration_s`."""
    if rate <= 0 or duration_s <= 0:
        return np.empty(0)
    rng = np.random.default_rng(seed)
    expected = rate * duration_s
    count = int(expected + 6 * np.sqrt(expected) + 16)  # enough gaps with near certainty
    times = np.cumsum(rng.exponential(1.0 / rate, size=count))
    while times[-1] < duration_s:  # astronomically rare; stay exact anyway
        more = times[-1] + np.cumsum(rng.exponential(1.0 / rate, size=count))
        times = np.concatenate([times, more])
    return times[times < duration_s]


async def sleep_until(when: float) -> None:
    delay = when - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def cpu_between(start: float, end: float) -> float:
    """This process's CPU seconds between two perf_counter times."""
    await sleep_until(start)
    before = time.process_time()
    await sleep_until(end)
    return time.process_time() - before
