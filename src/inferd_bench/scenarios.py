"""The four scenarios as sequences of phases (after MLPerf LoadGen), and the rate search.

Each scenario only decides which phases to run and what the headline is; running a phase and
summarizing it is the `measure` function it is given, so the logic here is tested with a fake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from inferd_bench.config import BenchConfig
from inferd_bench.phase import Phase
from inferd_bench.result import Point, SearchStep

Measure = Callable[[Phase], Point]

MAX_ERROR_RATE = 0.01
MAX_DOUBLINGS = 10  # the search's exponential phase: at most 2**10 x the start rate
PROBE_CONCURRENCY = 8
OFFLINE_DEFAULT_REQUESTS = 1000


@dataclass
class Outcome:
    points: list[Point]
    headline: str
    best_rate: float | None = None
    search: list[SearchStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_scenario(config: BenchConfig, measure: Measure) -> Outcome:
    scenario = {
        "single-stream": single_stream,
        "offline": offline,
        "server": server,
        "sweep": sweep,
    }[config.scenario]
    outcome = scenario(config, measure)
    busy = [p.label for p in outcome.points if p.saturated]
    if busy:
        outcome.notes.append(
            "the generator itself may have limited " + ", ".join(busy) + " (a worker at "
            "90% or more of a CPU, or sends late on their schedule): add --workers, or read "
            "those points as the generator's limit rather than the server's"
        )
    return outcome


def _phase(config: BenchConfig, label: str, **fields: Any) -> Phase:
    base = Phase(
        label,
        "closed",
        warmup_s=config.warmup_s,
        duration_s=config.duration_s,
        timeout_s=config.timeout_s,
        seed=config.seed,
    )
    return replace(base, **fields)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g} ms"


def single_stream(config: BenchConfig, measure: Measure) -> Outcome:
    point = measure(_phase(config, "single-stream", mode="closed", requests=config.requests))
    p90 = point.latency_ms.p90 if point.latency_ms else None
    return Outcome(
        [point],
        f"single-stream: p90 latency {_ms(p90)} ({point.throughput:.1f} req/s, one at a time)",
    )


def offline(config: BenchConfig, measure: Measure) -> Outcome:
    total = config.requests or OFFLINE_DEFAULT_REQUESTS
    notes = [] if config.requests else [f"offline: --requests not given, sent {total}"]
    point = measure(
        _phase(
            config,
            "offline",
            mode="offline",
            requests=total,
            concurrency=min(config.max_connections, total),
        )
    )
    headline = (
        f"offline: {point.throughput:.1f} req/s ({point.ok} of {total} queries issued at once, "
        f"{point.concurrency} connections)"
    )
    return Outcome([point], headline, notes=notes)


def sweep(config: BenchConfig, measure: Measure) -> Outcome:
    points = [
        measure(_phase(config, f"c={level}", mode="closed", concurrency=level))
        for level in config.concurrency
    ]
    best = max(points, key=lambda p: p.throughput)
    p99 = best.latency_ms.p99 if best.latency_ms else None
    headline = f"sweep: peak {best.throughput:.1f} req/s at {best.label} (p99 {_ms(p99)})"
    return Outcome(points, headline)


def server(config: BenchConfig, measure: Measure) -> Outcome:
    def at(rate: float) -> Point:
        label = f"{rate:g}/s"
        return measure(
            _phase(config, label, mode="open", rate=rate, concurrency=config.max_connections)
        )

    bound = config.p99_bound_ms
    if config.rate is not None:
        point = at(config.rate)
        p99 = point.latency_ms.p99 if point.latency_ms else None
        verdict = ""
        if bound is not None:
            verdict = " — meets" if meets(point, bound) else " — misses"
            verdict += f" the bound p99 <= {bound:g} ms"
        headline = (
            f"server at {config.rate:g} req/s scheduled: {point.throughput:.1f} req/s answered, "
            f"p99 {_ms(p99)} from the scheduled time{verdict}"
        )
        return Outcome([point], headline)
    assert bound is not None
    probe = measure(
        _phase(
            config,
            f"probe c={PROBE_CONCURRENCY}",
            mode="closed",
            concurrency=min(PROBE_CONCURRENCY, config.max_connections),
            warmup_s=min(config.warmup_s, 1.0),
            duration_s=min(config.duration_s, 2.0),
        )
    )
    start = _round(max(probe.throughput / 2, 1.0))
    points: list[Point] = []

    def trial(rate: float) -> Point:
        point = at(rate)
        points.append(point)
        return point

    best, steps = search_rate(trial, bound, start, config.search_steps)
    notes = [
        f"search: a closed-loop probe at c={probe.concurrency} gave {probe.throughput:.1f} "
        f"req/s; the rate started at half of it, doubled until p99 > {bound:g} ms or errors "
        f"> {MAX_ERROR_RATE:.0%}, then was bisected {config.search_steps} times "
        f"({len(steps)} trials of {config.warmup_s:g} + {config.duration_s:g} s)"
    ]
    if best is None:
        lowest = min(step.rate for step in steps)
        headline = f"server: no rate tried kept p99 <= {bound:g} ms (lowest tried {lowest:g}/s)"
    else:
        winner = next(step for step in steps if step.rate == best and step.passed)
        headline = (
            f"server: {best:g} req/s is the highest rate found with p99 <= {bound:g} ms and "
            f"<= {MAX_ERROR_RATE:.0%} errors (p99 {_ms(winner.p99_ms)}, {len(steps)} trials)"
        )
    return Outcome([probe, *points], headline, best, steps, notes)


def meets(point: Point, bound_ms: float) -> bool:
    """Whether a server-scenario point holds the bound: p99 within it, errors within 1%."""
    return (
        point.latency_ms is not None
        and point.latency_ms.p99 <= bound_ms
        and point.error_rate <= MAX_ERROR_RATE
    )


def _round(rate: float) -> float:
    return float(f"{rate:.3g}")


def search_rate(
    trial: Callable[[float], Point],
    bound_ms: float,
    start: float,
    bisect_steps: int,
) -> tuple[float | None, list[SearchStep]]:
    """The highest rate whose trial meets the bound: double from `start` until one fails (or
    halve until one passes), then bisect between the last pass and the first failure."""
    steps: list[SearchStep] = []

    def passes(rate: float, phase: str) -> bool:
        point = trial(rate)
        ok = meets(point, bound_ms)
        p99 = point.latency_ms.p99 if point.latency_ms else None
        steps.append(SearchStep(rate, p99, round(point.error_rate, 6), ok, phase))
        return ok

    good: float | None = None
    bad: float | None = None
    rate = _round(start)
    if passes(rate, "grow"):
        good = rate
        for _ in range(MAX_DOUBLINGS):
            rate = _round(rate * 2)
            if not passes(rate, "grow"):
                bad = rate
                break
            good = rate
    else:
        bad = rate
        for _ in range(MAX_DOUBLINGS):
            rate = _round(rate / 2)
            if passes(rate, "shrink"):
                good = rate
                break
            bad = rate
    if good is None or bad is None:
        return good, steps
    for _ in range(bisect_steps):
        middle = _round((good + bad) / 2)
        if middle in (good, bad):
            break
        if passes(middle, "bisect"):
            good = middle
        else:
            bad = middle
    return good, steps
