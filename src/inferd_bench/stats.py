"""Raw measurements of one phase, merged across workers, summarized into a Point.

Workers return every latency, not their own percentiles: percentiles of several workers
cannot be combined, the raw samples can (a million doubles is 8 MB, sent once per phase).
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from inferd_bench.result import Latency, Point

SATURATED_CPU = 0.9  # a worker busier than this share of one CPU may be what limits a point
SATURATED_LAG_S = 0.010  # p99 lateness of scheduled sends beyond which the schedule slipped


def _doubles() -> array[float]:
    return array("d")


@dataclass
class PhaseResult:
    """One worker's measured window of one phase (times are `perf_counter` seconds, which on
    Linux is CLOCK_MONOTONIC and so comparable between processes)."""

    label: str
    start: float = 0.0  # measured window: start and end
    end: float = 0.0
    sent: int = 0
    completed: int = 0
    ok: int = 0
    latencies: array[float] = field(default_factory=_doubles)  # seconds, 2xx only
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: dict[str, str] = field(default_factory=dict)
    ttft: array[float] = field(default_factory=_doubles)
    itl: array[float] = field(default_factory=_doubles)
    tokens: int = 0
    usage_tokens: bool = True  # every stream reported its completion tokens (else: chunks)
    send_lag: array[float] = field(default_factory=_doubles)
    cpu_s: float = 0.0  # process CPU seconds over the window
    connections: int = 0
    worker_cpu: list[float] = field(default_factory=list)  # each worker's share of one CPU

    def error(self, kind: str, sample: str) -> None:
        self.errors[kind] += 1
        if kind not in self.error_samples:
            self.error_samples[kind] = sample[:300]

    @property
    def window_s(self) -> float:
        return max(self.end - self.start, 0.0)


def merge(results: Sequence[PhaseResult]) -> PhaseResult:
    """Several workers' results of the same phase as one; the window spans them all."""
    active = [r for r in results if r.sent or r.completed or r.errors] or list(results[:1])
    out = PhaseResult(results[0].label)
    out.start = min(r.start for r in active)
    out.end = max(r.end for r in active)
    out.usage_tokens = all(r.usage_tokens for r in active)
    for r in results:
        out.sent += r.sent
        out.completed += r.completed
        out.ok += r.ok
        out.latencies.extend(r.latencies)
        out.errors.update(r.errors)
        for kind, sample in r.error_samples.items():
            out.error_samples.setdefault(kind, sample)
        out.ttft.extend(r.ttft)
        out.itl.extend(r.itl)
        out.tokens += r.tokens
        out.send_lag.extend(r.send_lag)
        out.cpu_s += r.cpu_s
        out.connections += r.connections
        out.worker_cpu.extend(r.worker_cpu or ([r.cpu_s / r.window_s] if r.window_s else [0.0]))
    return out


def latency(seconds: Iterable[float]) -> Latency | None:
    """p50/p90/p99/max/mean in milliseconds; None for no samples."""
    values = np.asarray(seconds if isinstance(seconds, array) else list(seconds), dtype=np.float64)
    if values.size == 0:
        return None
    ms = values * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return Latency(
        p50=round(float(p50), 4),
        p90=round(float(p90), 4),
        p99=round(float(p99), 4),
        max=round(float(ms.max()), 4),
        mean=round(float(ms.mean()), 4),
        count=int(values.size),
    )


def summarize(
    result: PhaseResult,
    *,
    concurrency: int | None = None,
    target_rate: float | None = None,
    streaming: bool = False,
) -> Point:
    window = result.window_s
    to_epoch = time.time() - time.perf_counter()  # for lining the window up with server logs
    lag = latency(result.send_lag) if target_rate is not None else None
    busiest = max(result.worker_cpu, default=0.0)
    saturated = busiest >= SATURATED_CPU or (lag is not None and lag.p99 > SATURATED_LAG_S * 1000)
    return Point(
        label=result.label,
        concurrency=concurrency,
        target_rate=target_rate,
        duration_s=round(window, 4),
        sent=result.sent,
        completed=result.completed,
        ok=result.ok,
        throughput=round(result.ok / window, 3) if window else 0.0,
        latency_ms=latency(result.latencies),
        errors=dict(sorted(result.errors.items())),
        error_samples=dict(sorted(result.error_samples.items())),
        ttft_ms=latency(result.ttft) if streaming else None,
        itl_ms=latency(result.itl) if streaming else None,
        tokens_per_s=round(result.tokens / window, 3) if streaming and window else None,
        tokens_counted_by=("usage" if result.usage_tokens else "chunks") if streaming else None,
        send_lag_ms=lag,
        generator_cpu=round(result.cpu_s / window, 4) if window else 0.0,
        generator_cpu_max=round(busiest, 4),
        saturated=saturated,
        connections=result.connections,
        window=(round(result.start + to_epoch, 3), round(result.end + to_epoch, 3)),
    )
