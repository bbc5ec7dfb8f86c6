"""`run_bench` end to end against the loopback server: in-process and with worker processes."""

from __future__ import annotations

import io
import socket

import pytest
from rich.console import Console

from inferd_bench import BenchConfig, BenchError, run_bench
from inferd_bench.http1 import Target
from inferd_bench.phase import Phase
from inferd_bench.progress import ProgressDisplay
from inferd_bench.runner import ProcessRunner
from inferd_bench.workload import build_workload
from tests.unit.inferd_bench.conftest import LocalServer


def test_sweep_through_the_library_api(server: LocalServer) -> None:
    config = BenchConfig(server.url, "m", concurrency=(1, 3), duration_s=0.3, warmup_s=0.1)
    result = run_bench(config)
    assert [p.label for p in result.points] == ["c=1", "c=3"]
    assert all(p.ok > 0 and p.errors == {} for p in result.points)
    assert result.protocol == "v2" and "random requests" in result.source
    assert result.headline.startswith("sweep: peak")
    assert result.settings["concurrency"] == (1, 3)
    assert result.machine["cpus"]
    # the server saw the metadata request, then only inference requests
    assert server.stats.paths[0] == "/v2/models/m"
    assert set(server.stats.paths[1:]) == {"/v2/models/m/infer"}


def test_worker_processes_split_the_work_and_merge(server: LocalServer) -> None:
    target = Target.parse(server.url)
    workload = build_workload(BenchConfig(server.url, "m"), target)
    runner = ProcessRunner(target, workload, workers=2)
    try:
        offline = runner.run(Phase("off", "offline", concurrency=4, requests=41))
        closed = runner.run(Phase("c=3", "closed", concurrency=3, duration_s=0.3))
    finally:
        runner.close()
    assert offline.ok == 41 and offline.errors == {}
    assert len(offline.worker_cpu) == 2
    assert closed.ok > 0 and closed.connections == 3
    assert closed.window_s == pytest.approx(0.3, abs=0.05)
    assert server.stats.requests >= 1 + 41 + closed.ok


def test_unreachable_url_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(BenchError, match=r"cannot connect to .*is the server running\?"):
            run_bench(BenchConfig(url, "m"))
    with pytest.raises(BenchError, match="only plain http"):
        run_bench(BenchConfig("https://example.org", "m"))


def test_single_stream_ignores_workers(server: LocalServer) -> None:
    config = BenchConfig(
        server.url, "m", scenario="single-stream", requests=10, warmup_s=0, workers=2
    )
    result = run_bench(config)
    assert result.workers == 1 and "--workers ignored" in result.notes[0]
    assert result.points[0].ok == 10


def test_progress_display_shows_the_current_phase() -> None:
    counters = [0.0] * 8
    display = ProgressDisplay(counters, workers=2, console=Console(file=io.StringIO()))
    counters[0:4] = [10, 8, 1, 2.5]  # worker 0: sent, done, errors, p50 ms
    display.phase("c=16", 12.0)
    counters[0:4] = [30, 27, 2, 2.5]
    counters[4:8] = [20, 19, 0, 3.5]
    text = display.__rich__().plain
    assert "c=16" in text and "/12 s" in text
    assert "sent 40" in text and "done 38" in text and "errors 1" in text
    assert "p50 3.5 ms" in text
