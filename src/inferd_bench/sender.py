"""One worker's requests, whatever drives them: its connections, the next sample, sending one
request and counting its outcome, and the live counters the progress display reads.

The closed and offline loops (`driver.py`) and the open loop (`openloop.py`) both build on
this, so neither needs the other: the driver dispatches to the open loop, never back.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import MutableSequence

from inferd_bench.http1 import Channel, ConnectError, HttpClientError, Target
from inferd_bench.sse import SseTimer
from inferd_bench.stats import PhaseResult
from inferd_bench.workload import Workload

# Progress slots per worker in the shared counters array.
SENT, DONE, ERRORS, P50_MS = range(4)
SLOTS = 4
TICK_S = 0.25
CONNECT_BACKOFF_S = 0.01  # after a refused connection, so a dead server is not hammered


class Sender:
    """Sends one worker's requests on its channels and counts them (`Driver` runs phases)."""

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

    # --- one request ------------------------------------------------------------------------------

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

    def finish(
        self, result: PhaseResult, cpu_start: float = 0.0, cpu_s: float | None = None
    ) -> PhaseResult:
        """Complete a phase's result with what this worker spent: CPU and connections."""
        if cpu_s is None:
            cpu_s = time.process_time() - cpu_start
        result.cpu_s = cpu_s
        result.worker_cpu = [cpu_s / result.window_s if result.window_s else 0.0]
        result.connections = sum(c.opened for c in self._channels)
        return result

    def release(self) -> None:
        """Close the phase's connections and publish its last counts."""
        for channel in self._channels:
            channel.close()
        self._channels = []
        self._publish()

    # --- progress ---------------------------------------------------------------------------------

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
