"""`inferd bench` as a user runs it: a subprocess against a real `inferd serve`.

Durations are a second or two; the assertions are about what was sent, counted and written,
never about how fast anything was.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import BUNDLED, Server, start_tiny_generator, stop_server

SHORT = ("--duration", "1", "--warmup", "0.3", "--quiet")


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferd.cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def bench_json(*args: str) -> dict[str, Any]:
    done = bench(*args, "--json", "-")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_sweep_on_digits_with_its_eval_set_over_v1(server: Server) -> None:
    result = bench_json(
        server.url, "--model", "digits", "--eval", str(BUNDLED / "digits"),
        "--concurrency", "1,4", *SHORT,
    )  # fmt: skip
    assert result["protocol"] == "v1"
    assert "360 eval instances" in result["source"]
    assert [p["label"] for p in result["points"]] == ["c=1", "c=4"]
    for point in result["points"]:
        assert point["ok"] > 0 and point["errors"] == {}
        assert point["sent"] == point["ok"]
        assert point["latency_ms"]["p50"] <= point["latency_ms"]["p99"]
        assert point["throughput"] == pytest.approx(point["ok"] / point["duration_s"], rel=1e-3)
    assert result["headline"].startswith("sweep: peak")


@pytest.mark.parametrize(("protocol", "workers"), [("v2", 1), ("v2-binary", 2)])
def test_sweep_with_random_tensors_on_a_bare_onnx_model(
    server: Server, protocol: str, workers: int
) -> None:
    result = bench_json(
        server.url, "--model", "affine", "--protocol", protocol, "--concurrency", "1,4",
        "--workers", str(workers), *SHORT,
    )  # fmt: skip
    assert result["protocol"] == protocol and result["workers"] == workers
    assert "x FP32[1, 4]" in result["source"]  # shaped from GET /v2/models/affine
    assert all(p["ok"] > 0 and p["errors"] == {} for p in result["points"])
    assert all(p["generator_cpu"] > 0 for p in result["points"])


def test_server_scenario_searches_under_a_bound(server: Server) -> None:
    result = bench_json(
        server.url, "--model", "affine", "--scenario", "server", "--p99-bound-ms", "50",
        "--search-steps", "1", "--duration", "0.5", "--warmup", "0.2", "--quiet",
    )  # fmt: skip
    steps = result["search"]
    assert len(steps) >= 2
    assert result["points"][0]["label"] == "probe c=8"
    assert len(result["points"]) == 1 + len(steps)
    for step, point in zip(steps, result["points"][1:], strict=True):
        assert point["target_rate"] == step["rate"]
        assert point["send_lag_ms"] is not None
        assert step["passed"] == (
            point["latency_ms"] is not None
            and point["latency_ms"]["p99"] <= 50
            and point["error_rate"] <= 0.01
        )
    passed = [s["rate"] for s in steps if s["passed"]]
    assert result["best_rate"] == (max(passed) if passed else None)


def test_single_stream_with_a_request_count(server: Server) -> None:
    result = bench_json(
        server.url, "--model", "affine", "--scenario", "single-stream", "--requests", "25",
        "--warmup", "0", "--quiet",
    )  # fmt: skip
    (point,) = result["points"]
    assert point["ok"] == 25 and point["concurrency"] == 1
    assert "p90 latency" in result["headline"]


def test_offline_sends_the_whole_batch(server: Server) -> None:
    result = bench_json(
        server.url, "--model", "affine", "--scenario", "offline", "--requests", "300",
        "--max-connections", "16", "--warmup", "0", "--quiet",
    )  # fmt: skip
    (point,) = result["points"]
    assert point["ok"] == 300 and point["concurrency"] == 16
    assert result["headline"].startswith("offline:")


def test_markdown_json_file_and_plot(server: Server, tmp_path: Path) -> None:
    out, png = tmp_path / "result.json", tmp_path / "latency.png"
    done = bench(
        server.url, "--model", "affine", "--concurrency", "1,2", *SHORT,
        "--json", str(out), "--plot", str(png),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| c=1 |" in done.stdout and "| c=2 |" in done.stdout  # the markdown table
    assert done.stdout.startswith("## inferd bench: sweep, affine")
    doc = json.loads(out.read_text())
    assert doc["model"] == "affine" and len(doc["points"]) == 2
    with Image.open(png) as image:
        assert image.format == "PNG"


def test_a_wrong_model_name_is_counted_as_404s(server: Server) -> None:
    done = bench(
        server.url, "--model", "no-such-model", "--eval", str(BUNDLED / "digits"),
        "--concurrency", "2", *SHORT, "--json", "-",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (point,) = json.loads(done.stdout)["points"]
    assert point["ok"] == 0
    assert set(point["errors"]) == {"404"} and point["errors"]["404"] > 0
    assert "no-such-model" in point["error_samples"]["404"]
    assert "some requests failed" in done.stderr


def test_an_unreachable_url_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        done = bench(f"http://127.0.0.1:{port}", "--model", "affine", *SHORT)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())  # rich wraps at 80 columns off a terminal
    assert f"cannot connect to http://127.0.0.1:{port}" in message
    assert "is the server running?" in message
    assert "Traceback" not in message


@pytest.fixture(scope="module")
def generation_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_tiny_generator(tmp_path_factory.mktemp("bench-generation"))
    try:
        yield running
    finally:
        stop_server(running.process)


def test_openai_streaming_reports_ttft_itl_and_tokens(generation_server: Server) -> None:
    result = bench_json(
        generation_server.url, "--model", "tiny", "--protocol", "openai", "--concurrency", "1,2",
        "--max-tokens", "6", "--ignore-eos", *SHORT,
    )  # fmt: skip
    assert result["protocol"] == "openai"
    for point in result["points"]:
        assert point["ok"] > 0 and point["errors"] == {}
        assert point["tokens_counted_by"] == "usage"
        assert point["ttft_ms"]["count"] == point["ok"]
        assert point["itl_ms"]["count"] > 0
        assert point["ttft_ms"]["p50"] <= point["latency_ms"]["max"]
        # ignore_eos: every counted stream made exactly 6 tokens
        assert point["tokens_per_s"] == pytest.approx(6 * point["throughput"], rel=1e-3)
