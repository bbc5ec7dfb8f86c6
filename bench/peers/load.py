"""The load: `inferd bench --scenario sweep` as a subprocess, the same for every peer.

`--loadgen httpx` is a STAND-IN, kept for when `inferd bench` is missing or broken: an
httpx closed loop (one client per level, N workers each with one request in flight). httpx
costs far more CPU per request than `inferd bench`'s httptools client, so on two shared cores
it caps every peer lower and squeezes the ratios; never publish its figures.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import BenchError
from bench.peers.workload import Workload

LOADGENS = ("inferd", "httpx")


@dataclass
class Level:
    """One concurrency level of the sweep against one peer and model."""

    concurrency: int
    rps: float  # 2xx answers per measured second
    p50_ms: float | None
    p99_ms: float | None
    ok: int
    errors: dict[str, int] = field(default_factory=dict)
    generator_cpu: float | None = None  # CPU-seconds per second the load generator used
    saturated: bool = False  # the generator says it may have been the limit
    window: tuple[float, float] | None = None  # Unix times of the measured window
    server_cpu: float | None = None  # share of one CPU the server used (all its processes)
    other_cpu: float | None = None  # ... everything but the server and the generator

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def inferd_bench_argv(
    url: str, workload: Workload, levels: list[int], duration: float, warmup: float
) -> list[str]:
    return [
        str(Path(sys.executable).with_name("inferd")),
        "bench",
        url,
        "--model",
        workload.name,
        "--protocol",
        "v2",
        "--scenario",
        "sweep",
        "--concurrency",
        ",".join(map(str, levels)),
        "--duration",
        f"{duration:g}",
        "--warmup",
        f"{warmup:g}",
        "--samples",
        str(workload.samples),
        "--quiet",
        "--json",
        "-",
    ]


def run_inferd_bench(
    url: str, workload: Workload, levels: list[int], duration: float, warmup: float
) -> tuple[list[Level], dict[str, Any]]:
    """The sweep through `inferd bench`; returns the levels and its whole JSON result."""
    argv = inferd_bench_argv(url, workload, levels, duration, warmup)
    limit = len(levels) * (duration + warmup) * 3 + 120
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=limit, check=False)
    if proc.returncode != 0:
        raise BenchError(
            f"inferd bench exited {proc.returncode}:\n{proc.stderr[-2000:]}{proc.stdout[-500:]}"
        )
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise BenchError(f"inferd bench did not print JSON:\n{proc.stdout[-2000:]}") from None
    out = []
    for point in result["points"]:
        latency = point.get("latency_ms") or {}
        window = point.get("window")
        out.append(
            Level(
                concurrency=int(point["concurrency"]),
                rps=float(point["throughput"]),
                p50_ms=latency.get("p50"),
                p99_ms=latency.get("p99"),
                ok=int(point["ok"]),
                errors={str(k): int(v) for k, v in (point.get("errors") or {}).items()},
                generator_cpu=point.get("generator_cpu"),
                saturated=bool(point.get("saturated")),
                window=(float(window[0]), float(window[1])) if window else None,
            )
        )
    return out, result


# ---------------------------------------------------------------------------------------------
# STAND-IN load generator (--loadgen httpx): only for when `inferd bench` cannot be used.


async def _httpx_level(
    url: str, bodies: list[bytes], concurrency: int, duration: float, warmup: float
) -> Level:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    window = [0.0, 0.0]  # measured window (perf_counter), set once the warm-up is over
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def worker(offset: int) -> None:
            for body in itertools.islice(itertools.cycle(bodies), offset, None):
                t0 = time.perf_counter()
                if window[1] and t0 >= window[1]:
                    return
                try:
                    response = await client.post(url, content=body, headers=headers)
                    kind = None if response.status_code < 300 else str(response.status_code)
                except httpx.HTTPError as error:
                    kind = type(error).__name__
                t1 = time.perf_counter()
                if window[0] <= t0 and (not window[1] or t1 <= window[1]) and window[0]:
                    if kind is None:
                        latencies.append(t1 - t0)
                    else:
                        errors[kind] = errors.get(kind, 0) + 1

        tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
        await asyncio.sleep(warmup)
        window[0] = time.perf_counter()
        window[1] = window[0] + duration
        started, cpu_started = time.time(), time.process_time()
        await asyncio.gather(*tasks)
        cpu = (time.process_time() - cpu_started) / (time.perf_counter() - window[0])
    latencies.sort()

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return Level(
        concurrency,
        len(latencies) / duration,
        pct(0.5),
        pct(0.99),
        len(latencies),
        errors,
        generator_cpu=cpu,  # this whole process: the generator and the CPU sampler
        window=(started, started + duration),
    )


def run_httpx_sweep(
    url: str, workload: Workload, levels: list[int], duration: float, warmup: float
) -> tuple[list[Level], dict[str, Any]]:
    """STAND-IN: the same sweep with httpx in this process (see the module docstring)."""
    bodies = [line for line in workload.samples.read_bytes().splitlines() if line.strip()]
    route = url + workload.route
    out = [asyncio.run(_httpx_level(route, bodies, c, duration, warmup)) for c in levels]
    return out, {"generator": "httpx stand-in"}


def run_sweep(
    loadgen: str, url: str, workload: Workload, levels: list[int], duration: float, warmup: float
) -> tuple[list[Level], dict[str, Any]]:
    if loadgen == "inferd":
        return run_inferd_bench(url, workload, levels, duration, warmup)
    if loadgen == "httpx":
        return run_httpx_sweep(url, workload, levels, duration, warmup)
    raise BenchError(f"unknown load generator {loadgen!r}; use one of {LOADGENS}")
