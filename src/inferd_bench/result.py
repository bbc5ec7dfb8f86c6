"""What a run reports: plain dataclasses, so a script reads fields and `asdict` gives JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Latency:
    """Percentiles in milliseconds (numpy's linear interpolation), with the max and mean."""

    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    count: int


@dataclass
class Point:
    """One measured load level: a concurrency, an arrival rate, or the whole offline batch."""

    label: str
    concurrency: int | None  # closed loop: streams; offline: connections
    target_rate: float | None  # server scenario: the scheduled arrivals per second
    duration_s: float  # the measured window
    sent: int  # counted requests: ok + every error
    completed: int  # answered with an HTTP status, any
    ok: int  # answered 2xx
    throughput: float  # ok / duration_s
    latency_ms: Latency | None  # of the 2xx answers; server: from the scheduled send time
    errors: dict[str, int] = field(default_factory=dict)  # "404", "timeout", "connect", ...
    error_samples: dict[str, str] = field(default_factory=dict)  # the first body/message of each
    ttft_ms: Latency | None = None  # generation: request sent → first text chunk
    itl_ms: Latency | None = None  # generation: gaps between text chunks
    tokens_per_s: float | None = None  # generation: completion tokens over the window
    tokens_counted_by: str | None = None  # "usage" (the server's count) or "chunks"
    send_lag_ms: Latency | None = None  # server: how late the generator sent vs its schedule
    generator_cpu: float = 0.0  # CPU-seconds the generator used per second (all workers)
    generator_cpu_max: float = 0.0  # the busiest worker's share of one CPU
    saturated: bool = False  # the generator, not the server, may have limited this point
    connections: int = 0  # connections opened (reconnects included)
    window: tuple[float, float] = (0.0, 0.0)  # Unix times the measured window began and ended

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        """Failed share of the counted requests (every one ends as ok or as an error)."""
        return self.error_count / self.sent if self.sent else 0.0


@dataclass
class SearchStep:
    """One trial of the server scenario's rate search."""

    rate: float
    p99_ms: float | None
    error_rate: float
    passed: bool
    phase: str  # "probe", "grow", "shrink" or "bisect"


@dataclass
class BenchResult:
    """A whole run: its settings, one Point per load level, and the headline figure."""

    url: str
    model: str
    protocol: str
    scenario: str
    source: str  # where the requests came from
    workers: int
    started_at: str  # ISO 8601, local time
    settings: dict[str, Any]
    points: list[Point]
    headline: str  # one line a person reads first
    best_rate: float | None = None  # server scenario with a bound: the highest passing rate
    search: list[SearchStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
