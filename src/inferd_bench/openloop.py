"""The open loop: Poisson arrivals at a target rate, independent of how fast answers come.

Each arrival is sent on an idle connection (a new one up to the phase's `concurrency`, else it
waits in a backlog). Latency runs from the *scheduled* time, so a request that waited for the
generator or for a connection is charged for it (no coordinated omission), and the
generator's own lateness (`send_lag`) is recorded to show when it, not the server, slipped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from inferd_bench.http1 import Channel
from inferd_bench.phase import Phase, cpu_between, poisson_arrivals, sleep_until
from inferd_bench.sender import Sender
from inferd_bench.stats import PhaseResult

# The dispatcher sleeps at least this long (uvloop's timers count whole milliseconds): an
# arrival due sooner waits for the next tick, ~0.6 ms late at the median, which `send_lag`
# shows and its latency includes. Sleeping less spins the loop: at 3k and 10k arrivals/s that
# cost 1.4-2.7x the generator's CPU for the same sends (measured against an instant server).
MIN_SLEEP_S = 0.001


async def run_open(sender: Sender, phase: Phase) -> PhaseResult:
    """Run an open-loop phase on the sender's connections."""
    result = PhaseResult(phase.label)
    offsets = poisson_arrivals(phase.rate, phase.warmup_s + phase.duration_s, phase.seed)
    await sleep_until(phase.start_at)
    t0 = phase.start_at or time.perf_counter()  # the same schedule origin in every worker
    result.start = t0 + phase.warmup_s
    result.end = result.start + phase.duration_s
    schedule = (offsets + t0).tolist()
    pool = _Pool(sender, phase, result)
    meter = asyncio.get_running_loop().create_task(cpu_between(result.start, result.end))
    index, count = 0, len(schedule)
    while index < count:
        now = time.perf_counter()
        while index < count and schedule[index] <= now:
            due = schedule[index]
            if due >= result.start:
                result.sent += 1
                result.send_lag.append(now - due)
            pool.dispatch(due)
            index += 1
        if index < count:
            await asyncio.sleep(max(schedule[index] - time.perf_counter(), MIN_SLEEP_S))
    cpu_s = await meter
    # Everything scheduled in the window is waited for, up to a grace period; what is
    # still unanswered then counts as "unfinished", never silently dropped.
    grace = min(phase.timeout_s, max(1.0, phase.duration_s))
    await pool.drain(result.end + grace)
    unfinished = result.sent - result.ok - sum(result.errors.values())
    if unfinished > 0:
        result.errors["unfinished"] += unfinished
        result.error_samples.setdefault(
            "unfinished", f"no answer within {grace:g} s after the window closed"
        )
    return sender.finish(result, cpu_s=cpu_s)


class _Pool:
    """The open loop's connections: an arrival goes to an idle one, else a new one (up to the
    limit), else it waits in the backlog, its latency clock already running."""

    def __init__(self, sender: Sender, phase: Phase, result: PhaseResult) -> None:
        self.sender = sender
        self.phase = phase
        self.result = result
        self.idle: list[asyncio.Future[float | None]] = []
        self.backlog: deque[float] = deque()
        self.tasks: list[asyncio.Task[None]] = []

    def dispatch(self, due: float) -> None:
        while self.idle:
            waiter = self.idle.pop()  # the most recently used connection: warm, not timed out
            if not waiter.done():
                waiter.set_result(due)
                return
        self.backlog.append(due)
        if len(self.tasks) < self.phase.concurrency:
            channel = self.sender.new_channel()
            self.tasks.append(asyncio.get_running_loop().create_task(self._stream(channel)))

    async def _stream(self, channel: Channel) -> None:
        loop = asyncio.get_running_loop()
        start = self.result.start
        while True:
            if self.backlog:
                due: float | None = self.backlog.popleft()
            else:
                waiter: asyncio.Future[float | None] = loop.create_future()
                self.idle.append(waiter)
                due = await waiter
            if due is None:
                return
            outcome = await self.sender.send(channel, self.phase.timeout_s)
            if due >= start:
                self.sender.record(self.result, outcome, channel, due)

    async def drain(self, deadline: float) -> None:
        """Wait until every arrival is answered or `deadline` passes, then stop the streams."""
        while (self.backlog or len(self.idle) < len(self.tasks)) and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
