"""Phases run against a real loopback server: what is counted, from when, and what fails."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from inferd_bench.driver import Driver
from inferd_bench.http1 import Target, encode_request
from inferd_bench.phase import Phase, poisson_arrivals
from inferd_bench.workload import Workload
from tests.unit.inferd_bench.conftest import LocalServer


def workload(server_url: str, path: str, streaming: bool = False) -> tuple[Target, Workload]:
    target = Target.parse(server_url)
    request = encode_request(target, "POST", path, b"{}", {"Content-Type": "application/json"})
    return target, Workload((request,), "v2", "test", streaming)


def test_poisson_arrivals_have_the_rate_and_exponential_gaps() -> None:
    times = poisson_arrivals(rate=2000.0, duration_s=10.0, seed=42)
    assert np.all(np.diff(times) > 0) and times[0] >= 0 and times[-1] < 10.0
    # the count is Poisson(20000): within 4 standard deviations
    assert abs(times.size - 20_000) < 4 * np.sqrt(20_000)
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(1 / 2000, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)  # exponential: CV = 1
    # P(gap > mean) = e^-1 for an exponential distribution
    assert (gaps > 1 / 2000).mean() == pytest.approx(np.exp(-1), abs=0.02)
    # arrivals per 100 ms bin are Poisson(200): variance equals mean
    counts = np.histogram(times, bins=100, range=(0, 10))[0]
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.35)
    np.testing.assert_array_equal(times, poisson_arrivals(2000.0, 10.0, seed=42))
    assert not np.array_equal(times[:10], poisson_arrivals(2000.0, 10.0, seed=43)[:10])
    assert poisson_arrivals(0.0, 1.0, seed=0).size == 0


def test_share_splits_work_between_workers() -> None:
    phase = Phase("x", "closed", concurrency=5, rate=300.0, requests=7, seed=1)
    parts = [phase.share(i, 3) for i in range(3)]
    assert [p.concurrency for p in parts] == [2, 2, 1]
    assert [p.requests for p in parts] == [3, 2, 2]
    assert [p.rate for p in parts] == [100.0, 100.0, 100.0]
    assert len({p.seed for p in parts}) == 3  # independent arrival streams
    assert Phase("x", "closed", concurrency=1).share(1, 2).concurrency == 0  # idle worker
    assert Phase("x", "open", concurrency=1).share(1, 2).concurrency == 1  # needs a connection


async def test_closed_window_counts_what_completes_inside_it(server: LocalServer) -> None:
    target, load = workload(server.url, "/ok")
    phase = Phase("c=2", "closed", concurrency=2, warmup_s=0.1, duration_s=0.3)
    result = await Driver(target, load).run(phase)
    assert result.ok > 0 and result.errors == {}
    assert result.sent == result.ok == len(result.latencies)
    assert server.stats.requests >= result.ok  # warm-up and stragglers were sent, not counted
    assert result.window_s == pytest.approx(0.3)
    assert result.connections == 2 and server.stats.connections == 2


async def test_closed_with_a_request_count_sends_exactly_that(server: LocalServer) -> None:
    target, load = workload(server.url, "/ok")
    result = await Driver(target, load).run(Phase("one", "closed", concurrency=3, requests=20))
    assert result.ok == result.sent == 20
    assert server.stats.requests == 20


async def test_offline_issues_the_batch_over_its_connections(server: LocalServer) -> None:
    target, load = workload(server.url, "/ok")
    result = await Driver(target, load).run(Phase("off", "offline", concurrency=4, requests=50))
    assert result.ok == 50 and server.stats.requests == 50
    assert server.stats.connections == 4


async def test_open_loop_counts_every_arrival_of_the_window(server: LocalServer) -> None:
    target, load = workload(server.url, "/ok")
    phase = Phase("200/s", "open", concurrency=16, rate=200.0, warmup_s=0.1, duration_s=0.4)
    result = await Driver(target, load).run(phase)
    offsets = poisson_arrivals(200.0, 0.5, seed=0)
    assert result.sent == int(((offsets >= 0.1) & (offsets < 0.5)).sum())
    assert result.ok == result.sent
    assert len(result.send_lag) == result.sent
    assert server.stats.requests == offsets.size


async def test_open_loop_latency_runs_from_the_schedule(server: LocalServer) -> None:
    # One connection, 20 ms per answer, 100 arrivals/s: requests queue in the generator.
    # Measured from the send, each would take ~20 ms; from the schedule, the queue shows.
    target, load = workload(server.url, "/sleep/20")
    phase = Phase("100/s", "open", concurrency=1, rate=100.0, duration_s=0.3)
    result = await Driver(target, load).run(phase)
    assert result.ok == result.sent and result.sent >= 10
    assert max(result.latencies) > 3 * 0.020
    assert server.stats.connections == 1


async def test_open_loop_reports_unanswered_arrivals(server: LocalServer) -> None:
    target, load = workload(server.url, "/hang")
    phase = Phase("50/s", "open", concurrency=64, rate=50.0, duration_s=0.2, timeout_s=30.0)
    result = await Driver(target, load).run(phase)
    assert result.sent > 0
    assert result.errors == {"unfinished": result.sent}
    assert result.ok == 0


async def test_error_statuses_and_timeouts_are_counted(server: LocalServer) -> None:
    target, load = workload(server.url, "/status/404")
    result = await Driver(target, load).run(Phase("e", "closed", concurrency=2, requests=6))
    assert result.errors == {"404": 6} and result.ok == 0 and result.completed == 6
    assert "no such model" in result.error_samples["404"]

    target, load = workload(server.url, "/hang")
    phase = Phase("t", "closed", concurrency=1, requests=2, timeout_s=0.05)
    result = await Driver(target, load).run(phase)
    assert result.errors == {"timeout": 2} and result.completed == 0


async def test_refused_connections_are_counted_not_raised() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        target, load = workload(f"http://127.0.0.1:{sock.getsockname()[1]}", "/ok")
        result = await Driver(target, load).run(Phase("r", "closed", concurrency=1, requests=3))
    assert result.errors == {"connect": 3}
    assert "cannot connect" in result.error_samples["connect"]


async def test_streams_record_ttft_gaps_and_tokens(server: LocalServer) -> None:
    target, load = workload(server.url, "/v1/completions", streaming=True)
    result = await Driver(target, load).run(Phase("s", "closed", concurrency=2, requests=4))
    assert result.ok == 4
    assert len(result.ttft) == 4
    assert all(t >= 0.015 for t in result.ttft)  # the first text event comes 20 ms in
    assert len(result.itl) == 4 * 2  # three text events per stream: two gaps each
    assert result.tokens == 4 * 3 and result.usage_tokens
    assert all(latency >= ttft for latency, ttft in zip(result.latencies, result.ttft, strict=True))


async def test_progress_counters_are_published(server: LocalServer) -> None:
    target, load = workload(server.url, "/ok")
    counters = [0.0] * 8
    driver = Driver(target, load, counters, slot=1)
    await driver.run(Phase("p", "closed", concurrency=1, requests=5))
    assert counters[4:7] == [5.0, 5.0, 0.0]  # sent, done, errors of slot 1
    assert counters[7] > 0  # a recent p50
    assert counters[:4] == [0.0] * 4
