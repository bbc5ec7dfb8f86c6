"""Scenarios as phase sequences, and the rate search, with a fake `measure`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from inferd_bench.config import BenchConfig
from inferd_bench.phase import Phase
from inferd_bench.result import Latency, Point
from inferd_bench.scenarios import meets, run_scenario, search_rate


def point(
    label: str, throughput: float, p99: float | None, errors: int = 0, sent: int = 1000
) -> Point:
    latency = None if p99 is None else Latency(p99 / 2, p99 * 0.8, p99, p99 * 1.5, p99 / 2, 100)
    return Point(
        label=label,
        concurrency=None,
        target_rate=None,
        duration_s=1.0,
        sent=sent,
        completed=sent - errors,
        ok=sent - errors,
        throughput=throughput,
        latency_ms=latency,
        errors={"503": errors} if errors else {},
    )


def queue_p99(capacity: float) -> Callable[[float], Point]:
    """p99 of an M/M/1-like server: 1 ms service, exploding as the rate nears capacity."""

    def trial(rate: float) -> Point:
        p99 = 1.0 / max(1e-9, 1 - rate / capacity) if rate < capacity else 1e6
        return point(f"{rate:g}/s", min(rate, capacity), p99)

    return trial


def test_search_finds_the_highest_passing_rate() -> None:
    # p99 <= 10 ms holds while rate <= 0.9 * capacity: the answer is just under 900/s
    tried: list[float] = []
    fake = queue_p99(1000.0)

    def trial(rate: float) -> Point:
        tried.append(rate)
        return fake(rate)

    best, steps = search_rate(trial, bound_ms=10.0, start=50.0, bisect_steps=6)
    assert best is not None and 850 <= best < 900
    assert [s.rate for s in steps] == tried
    assert all(s.passed == (s.rate < 900) for s in steps)
    assert [s.phase for s in steps[:6]] == ["grow"] * 6  # 50, 100, 200, 400, 800, 1600
    assert tried[:6] == [50, 100, 200, 400, 800, 1600]
    assert {s.phase for s in steps[6:]} == {"bisect"}
    assert max(s.rate for s in steps if s.passed) == best


def test_search_shrinks_when_the_start_fails() -> None:
    best, steps = search_rate(queue_p99(100.0), bound_ms=10.0, start=1000.0, bisect_steps=4)
    assert steps[0].phase == "grow" and not steps[0].passed
    assert steps[1].phase == "shrink"
    assert best is not None and best <= 90


def test_search_counts_errors_and_gives_up_cleanly() -> None:
    def failing(rate: float) -> Point:
        return point("x", rate, 1.0, errors=20)  # 2% errors: never meets the bound

    best, steps = search_rate(failing, bound_ms=10.0, start=100.0, bisect_steps=3)
    assert best is None
    assert not any(s.passed for s in steps)
    assert steps[0].error_rate == pytest.approx(0.02)


def test_meets_needs_answers() -> None:
    assert not meets(point("x", 0.0, None), 10.0)
    assert meets(point("x", 10.0, 10.0, errors=10), 10.0)  # exactly 1% errors is allowed


class Recorder:
    def __init__(self) -> None:
        self.phases: list[Phase] = []

    def __call__(self, phase: Phase) -> Point:
        self.phases.append(phase)
        if phase.mode == "open":
            return queue_p99(400.0)(phase.rate)
        return point(phase.label, 100.0 * phase.concurrency, 2.0)


def test_sweep_runs_one_closed_phase_per_level() -> None:
    measure = Recorder()
    config = BenchConfig("x", "m", concurrency=(1, 4), duration_s=3, warmup_s=1)
    outcome = run_scenario(config, measure)
    assert [(p.mode, p.concurrency, p.duration_s, p.warmup_s) for p in measure.phases] == [
        ("closed", 1, 3, 1),
        ("closed", 4, 3, 1),
    ]
    assert outcome.headline.startswith("sweep: peak 400.0 req/s at c=4")


def test_single_stream_and_offline_phases() -> None:
    measure = Recorder()
    run_scenario(BenchConfig("x", "m", scenario="single-stream", requests=50), measure)
    outcome = run_scenario(BenchConfig("x", "m", scenario="offline", max_connections=8), measure)
    single, batch = measure.phases
    assert (single.mode, single.concurrency, single.requests) == ("closed", 1, 50)
    assert (batch.mode, batch.concurrency, batch.requests) == ("offline", 8, 1000)
    assert "not given" in outcome.notes[0]


def test_server_fixed_rate_and_search() -> None:
    measure = Recorder()
    fixed = run_scenario(BenchConfig("x", "m", scenario="server", rate=100.0), measure)
    assert [(p.mode, p.rate) for p in measure.phases] == [("open", 100.0)]
    assert fixed.best_rate is None and "100 req/s scheduled" in fixed.headline

    measure = Recorder()
    config = BenchConfig("x", "m", scenario="server", p99_bound_ms=10.0, search_steps=3)
    found = run_scenario(config, measure)
    probe, *trials = measure.phases
    assert probe.mode == "closed" and probe.concurrency == 8
    assert trials[0].rate == 400.0  # half of the probe's 800 req/s
    assert all(p.mode == "open" for p in trials)
    assert found.best_rate is not None and found.best_rate <= 360
    assert len(found.search) == len(trials) and len(found.points) == 1 + len(trials)
    assert "highest rate found" in found.headline
    assert "bisected 3 times" in found.notes[0]


def test_saturated_points_are_noted() -> None:
    def busy(phase: Phase) -> Point:
        out = point(phase.label, 10.0, 1.0)
        out.saturated = True
        return out

    outcome = run_scenario(BenchConfig("x", "m", concurrency=(2,)), busy)
    assert "limited c=2" in outcome.notes[0]
