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
import statistics
import time
from collections.abc import MutableSequence

from inferd_bench.http1 import Channel, ConnectError, HttpClientError, Target
from inferd_bench.openloop import run_open
from inferd_bench.phase import Phase, cpu_between, sleep_until
from inferd_bench.sse import SseTimer
from inferd_bench.stats import PhaseResult
from inferd_bench.workload import Workload

# Progress slots per worker in the shared counters array.
SENT, DONE, ERRORS, P50_MS = range(4)
SLOTS = 4
TICK_S = 0.25
CONNECT_BACKOFF_S = 0.01  # after a refused connection, so a dead server is not hammered


class Driver:
    """Runs phases in one event loop; keeps live counters for the progress display."""

    def __init__(
        self,
        target: Target,
        workload: Workload,
        counters: MutableSequence[float] | None = None,
        slot: int = 0,
        offset: int = 0,
    ) -> None:
        self.target = target
        self.requests = workload.requests
        self.streaming = workload.streaming
        self.counters = counters
        self.slot = slot
        self._next = offset  # index of the next sample; workers start at different ones
        self._sent = self._done = self._errors = 0
        self._recent: list[float] = []
        self._channels: list[Channel] = []

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
            for channel in self._channels:
                channel.close()
            self._channels = []
            self._publish()

    # --- one request -----------------------------------------------------------------------

    def new_channel(self) -> Channel:
        channel = Channel(self.target, connect_timeout_s=10.0)
        self._channels.append(channel)
        return channel

    def _sample(self) -> bytes:
        index = self._next
        self._next = index + 1
        return self.requests[index % len(self.requests)]

    async def send(
        self, channel: Channel, timeout_s: float
    ) -> tuple[int, HttpClientError | None, float, float, SseTimer | None]:
        """Send the next sample: (status or 0, the failure if any, sent at, done at, timer)."""
        data = self._sample()
        hook = SseTimer() if self.streaming else None
        self._sent += 1
        sent = time.perf_counter()
        try:
            status = await channel.send(data, timeout_s, hook)
        except HttpClientError as error:
            self._errors += 1
            done = time.perf_counter()
            if isinstance(error, ConnectError):
                await asyncio.sleep(CONNECT_BACKOFF_S)
            return 0, error, sent, done, hook
        self._done += 1
        return status, None, sent, time.perf_counter(), hook

    def record(
        self,
        result: PhaseResult,
        outcome: tuple[int, HttpClientError | None, float, float, SseTimer | None],
        channel: Channel,
        since: float = 0.0,
    ) -> None:
        """Count one request; latency runs from `since` (a scheduled time) or from its send."""
        status, error, sent, done, hook = outcome
        if error is not None:
            result.error(error.kind, str(error))
            return
        result.completed += 1
        if 200 <= status < 300:
            result.ok += 1
            elapsed = done - (since or sent)
            result.latencies.append(elapsed)
            self._recent.append(elapsed)
            if hook is not None:
                self._record_stream(result, hook, sent)
        else:
            self._errors += 1
            result.error(str(status), channel.body.decode("utf-8", "replace"))

    @staticmethod
    def _record_stream(result: PhaseResult, hook: SseTimer, sent: float) -> None:
        ttft = hook.ttft(sent)
        if ttft is not None:
            result.ttft.append(ttft)
        result.itl.extend(hook.gaps())
        result.tokens += hook.tokens
        if hook.completion_tokens is None:
            result.usage_tokens = False

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

    def finish(
        self, result: PhaseResult, cpu_start: float = 0.0, cpu_s: float | None = None
    ) -> PhaseResult:
        if cpu_s is None:
            cpu_s = time.process_time() - cpu_start
        result.cpu_s = cpu_s
        result.worker_cpu = [cpu_s / result.window_s if result.window_s else 0.0]
        result.connections = sum(c.opened for c in self._channels)
        return result

    def _idle(self, result: PhaseResult) -> PhaseResult:
        """A worker whose share is nothing (e.g. concurrency 1 over two workers)."""
        result.start = result.end = time.perf_counter()
        result.worker_cpu = [0.0]
        return result

    async def _tick(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(TICK_S)

    def _publish(self) -> None:
        counters = self.counters
        if counters is None:
            return
        base = self.slot * SLOTS
        counters[base + SENT] = self._sent
        counters[base + DONE] = self._done
        counters[base + ERRORS] = self._errors
        recent, self._recent = self._recent, []
        if recent:
            counters[base + P50_MS] = statistics.median(recent) * 1000.0


async def _begin(phase: Phase) -> float:
    """Wait for the phase's start time; every worker's window counts from that same instant
    (a worker that connected late starts late but is measured over the same window)."""
    if not phase.start_at:
        return time.perf_counter()
    await sleep_until(phase.start_at)
    return phase.start_at
