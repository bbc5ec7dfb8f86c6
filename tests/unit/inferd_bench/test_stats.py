"""Percentiles against numpy, merging workers' raw results, and a phase's summary."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from inferd_bench.stats import PhaseResult, latency, merge, summarize


def test_percentiles_match_numpy() -> None:
    rng = np.random.default_rng(3)
    seconds = rng.lognormal(-6, 1, size=10_001)
    summary = latency(array("d", seconds))
    assert summary is not None
    ms = seconds * 1000
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        assert getattr(summary, name) == pytest.approx(np.percentile(ms, q), abs=1e-4)
    assert summary.max == pytest.approx(ms.max(), abs=1e-4)
    assert summary.mean == pytest.approx(ms.mean(), abs=1e-4)
    assert summary.count == 10_001
    assert latency([]) is None


def result(
    label: str, start: float, end: float, latencies: list[float], **counts: int
) -> PhaseResult:
    out = PhaseResult(label, start=start, end=end, latencies=array("d", latencies))
    out.sent = counts.get("sent", len(latencies))
    out.ok = out.completed = len(latencies)
    out.cpu_s = counts.get("cpu", 0) / 10
    out.worker_cpu = [out.cpu_s / (end - start)]
    return out


def test_merge_pools_raw_samples_and_spans_the_windows() -> None:
    one = result("c=4", 10.0, 12.0, [0.001, 0.002], cpu=5)
    two = result("c=4", 10.1, 12.2, [0.003, 0.004, 0.005], cpu=19)
    two.error("404", "no such model")
    two.error("404", "a later body")
    two.sent += 2
    merged = merge([one, two])
    assert merged.window_s == pytest.approx(2.2)
    assert sorted(merged.latencies) == [0.001, 0.002, 0.003, 0.004, 0.005]
    assert merged.ok == 5 and merged.sent == 7
    assert merged.errors == {"404": 2}
    assert merged.error_samples == {"404": "no such model"}  # the first one is kept
    assert merged.worker_cpu == pytest.approx([0.25, 1.9 / 2.1])
    # pooled percentiles differ from any mean of the workers' own percentiles
    summary = latency(merged.latencies)
    assert summary is not None and summary.p50 == pytest.approx(3.0)


def test_merge_ignores_idle_workers_window() -> None:
    busy = result("c=1", 5.0, 7.0, [0.001])
    idle = PhaseResult("c=1", start=100.0, end=100.0, worker_cpu=[0.0])
    assert merge([busy, idle]).window_s == pytest.approx(2.0)


def test_summary_counts_throughput_errors_and_saturation() -> None:
    phase = result("c=8", 0.0, 2.0, [0.001] * 100, cpu=19)
    phase.error("timeout", "no answer")
    phase.error("503", "busy")
    phase.sent = 102
    point = summarize(phase, concurrency=8)
    assert point.throughput == pytest.approx(50.0)
    assert point.error_count == 2
    assert point.error_rate == pytest.approx(2 / 102)
    assert point.generator_cpu == pytest.approx(0.95)
    assert point.saturated  # one worker at 95% of a CPU
    assert point.ttft_ms is None and point.tokens_per_s is None
    assert point.window[1] - point.window[0] == pytest.approx(2.0, abs=1e-3)


def test_late_sends_mark_an_open_loop_point_saturated() -> None:
    phase = result("100/s", 0.0, 1.0, [0.001] * 10)
    phase.send_lag = array("d", [0.0001] * 9 + [0.05])
    point = summarize(phase, target_rate=100.0)
    assert point.send_lag_ms is not None
    assert point.saturated
    phase.send_lag = array("d", [0.0001] * 10)
    assert not summarize(phase, target_rate=100.0).saturated


def test_streaming_summary() -> None:
    phase = result("c=1", 0.0, 4.0, [0.5, 0.5])
    phase.ttft = array("d", [0.1, 0.2])
    phase.itl = array("d", [0.01, 0.03])
    phase.tokens = 40
    point = summarize(phase, concurrency=1, streaming=True)
    assert point.tokens_per_s == pytest.approx(10.0)
    assert point.ttft_ms is not None and point.ttft_ms.p50 == pytest.approx(150.0)
    assert point.itl_ms is not None and point.itl_ms.max == pytest.approx(30.0)
    assert point.tokens_counted_by == "usage"
