"""The live display on stderr: what the current phase has sent, answered and failed, now.

It reads the counters the workers publish into shared memory, from rich's refresh thread, so
the event loops never wait for the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.text import Text

from inferd_bench.result import Point
from inferd_bench.sender import DONE, ERRORS, P50_MS, SENT, SLOTS


class ProgressDisplay:
    """`with ProgressDisplay(counters, workers): ...`; `phase()` at each phase's start."""

    def __init__(
        self, counters: Sequence[float], workers: int, console: Console | None = None
    ) -> None:
        self.counters = counters
        self.workers = workers
        self.console = console or Console(stderr=True)
        self._live = Live(self, console=self.console, refresh_per_second=4, transient=True)
        self._label = ""
        self._planned_s = 0.0
        self._started = time.perf_counter()
        self._base = (0.0, 0.0, 0.0)
        self._last = (self._started, 0.0)
        self._rate = 0.0

    def __enter__(self) -> ProgressDisplay:
        self._live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._live.stop()

    def _sum(self, slot: int) -> float:
        return sum(self.counters[w * SLOTS + slot] for w in range(self.workers))

    def phase(self, label: str, planned_s: float) -> None:
        self._label, self._planned_s = label, planned_s
        self._started = time.perf_counter()
        self._base = (self._sum(SENT), self._sum(DONE), self._sum(ERRORS))
        self._last = (self._started, self._base[1])
        self._rate = 0.0

    def finished(self, point: Point) -> None:
        """One permanent line per finished phase, above the live one."""
        latency = point.latency_ms
        p50 = f"p50 {latency.p50:.3g} ms, p99 {latency.p99:.3g} ms" if latency else "no answers"
        errors = f", {point.error_count} errors" if point.errors else ""
        self.console.print(
            f"[dim]{point.label}: {point.throughput:,.1f} req/s, {p50}{errors}[/dim]",
            highlight=False,
        )

    def __rich__(self) -> Text:
        now = time.perf_counter()
        sent = self._sum(SENT) - self._base[0]
        done = self._sum(DONE) - self._base[1]
        errors = self._sum(ERRORS) - self._base[2]
        then, done_then = self._last
        if now - then >= 0.5:
            self._rate = (self._sum(DONE) - done_then) / (now - then)
            self._last = (now, self._sum(DONE))
        p50s = [self.counters[w * SLOTS + P50_MS] for w in range(self.workers)]
        p50 = max(p50s) if any(p50s) else 0.0
        elapsed = now - self._started
        planned = f"/{self._planned_s:.0f}" if self._planned_s else ""
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"{self._label:>8} ", style="bold")
        line.append(f"{elapsed:5.1f}{planned} s  sent {sent:,.0f}  done {done:,.0f}  ")
        line.append(f"errors {errors:,.0f}  ", style="red" if errors else "")
        line.append(f"{self._rate:,.0f} req/s  p50 {p50:.3g} ms")
        return line
