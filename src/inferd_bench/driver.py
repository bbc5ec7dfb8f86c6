"""One worker's event loop running phases: closed loop and offline here, open loop in
`openloop.py`.

- closed: `concurrency` streams, each sending its next request when the last one answers.
  Counted: what completes inside the measured window (after the warm-up), as wrk does; or,
  with `requests`, exactly that many after the warm-up.
- offline: `requests` queries all issued at once, `concurrency` connections working them off.

Per request the hot path is: pick the pre-encoded bytes, write them, await one future, append
one float. Progress counters are copied to shared memory four times a second, not per request.
"""

from __future__ import annotations

import asyncio
import time

from inferd_bench.http1 import Channel, HttpClientError
from inferd_bench.openloop import run_open
from inferd_bench.phase import Phase, cpu_between, sleep_until
from inferd_bench.sender import Sender
from inferd_bench.stats import PhaseResult


class Driver(Sender):
    """Runs phases in one event loop: closed loop and offline here, open loop by `run_open`."""

    async def run(self, phase: Phase) -> PhaseResult:
        ticker = asyncio.get_running_loop().create_task(self._tick())
        try:
            if phase.mode == "open":
                return await run_open(self, phase)
            if phase.mode == "offline":
                return await self._offline(phase)
            return await self._closed(phase)
        finally:
            ticker.cancel()
            self.release()

    # --- closed loop -----------------------------------------------------------------------

    async def _closed(self, phase: Phase) -> PhaseResult:
        result = PhaseResult(phase.label)
        channels = [self.new_channel() for _ in range(phase.concurrency)]
        if not channels:
            return self._idle(result)
        await self._connect(channels)
        start = await _begin(phase)
        if phase.requests is not None:
            if phase.warmup_s:
                await self._window(channels, phase, None, start + phase.warmup_s)
            budget = [phase.requests]
            cpu = time.process_time()
            result.start = time.perf_counter()
            await asyncio.gather(*(self._counted(c, phase, result, budget) for c in channels))
            result.end = time.perf_counter()
            return self.finish(result, cpu)
        result.start = start + phase.warmup_s
        result.end = result.start + phase.duration_s
        meter = asyncio.get_running_loop().create_task(cpu_between(result.start, result.end))
        await self._window(channels, phase, result, result.end)
        cpu_s = await meter
        return self.finish(result, cpu_s=cpu_s)

    async def _window(
        self, channels: list[Channel], phase: Phase, result: PhaseResult | None, end: float
    ) -> None:
        """Keep every channel busy until `end`. A request in flight then is let finish
        (uncounted), so its connection stays usable and the next level starts clean."""
        await asyncio.gather(*(self._stream(c, phase, result, end) for c in channels))

    async def _stream(
        self, channel: Channel, phase: Phase, result: PhaseResult | None, end: float
    ) -> None:
        timeout_s = phase.timeout_s
        start = result.start if result is not None else end
        while time.perf_counter() < end:
            outcome = await self.send(channel, timeout_s)
            # Counted are the requests that end inside the window, as wrk counts them.
            if result is not None and start <= outcome[3] <= end:
                result.sent += 1
                self.record(result, outcome, channel)

    async def _counted(
        self, channel: Channel, phase: Phase, result: PhaseResult, budget: list[int]
    ) -> None:
        while budget[0] > 0:
            budget[0] -= 1
            result.sent += 1
            self.record(result, await self.send(channel, phase.timeout_s), channel)

    # --- offline ---------------------------------------------------------------------------

    async def _offline(self, phase: Phase) -> PhaseResult:
        result = PhaseResult(phase.label)
        total = phase.requests or 0
        channels = [self.new_channel() for _ in range(min(phase.concurrency, total))]
        if not channels:
            return self._idle(result)
        await self._connect(channels)
        start = await _begin(phase)
        if phase.warmup_s:
            await self._window(channels, phase, None, start + phase.warmup_s)
        budget = [total]
        cpu = time.process_time()
        result.start = time.perf_counter()
        await asyncio.gather(*(self._counted(c, phase, result, budget) for c in channels))
        result.end = time.perf_counter()
        return self.finish(result, cpu)

    # --- helpers ---------------------------------------------------------------------------

    async def _connect(self, channels: list[Channel]) -> None:
        """Open every connection before the clock starts (a refused one is retried in use)."""
        outcomes = await asyncio.gather(*(c.connect() for c in channels), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, HttpClientError):
                raise outcome

    def _idle(self, result: PhaseResult) -> PhaseResult:
        """A worker whose share is nothing (e.g. concurrency 1 over two workers)."""
        result.start = result.end = time.perf_counter()
        result.worker_cpu = [0.0]
        return result


async def _begin(phase: Phase) -> float:
    """Wait for the phase's start time; every worker's window counts from that same instant
    (a worker that connected late starts late but is measured over the same window)."""
    if not phase.start_at:
        return time.perf_counter()
    await sleep_until(phase.start_at)
    return phase.start_at
