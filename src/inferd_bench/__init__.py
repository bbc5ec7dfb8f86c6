"""`inferd bench`: a load generator for any V2 (inferd, Triton, MLServer, KServe), KServe V1 or
OpenAI-compatible server, usable from a script:

    from inferd_bench import BenchConfig, run_bench
    result = run_bench(BenchConfig("http://127.0.0.1:8000", "affine", concurrency=(1, 16)))
    print(result.headline, [p.throughput for p in result.points])

It is a client only, so it is a package of its own beside `inferd`: the server never imports
it (the `inferd bench` command does, lazily), and it imports from `inferd` only the wire
format (`codecs`, `datatypes`, `errors`, shared with the server on purpose) and `eventloop`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import socket
from dataclasses import asdict, replace

from inferd.eventloop import loop_factory
from inferd_bench.config import (
    PROTOCOLS,
    SCENARIOS,
    BenchConfig,
    BenchError,
    parse_header,
    parse_levels,
    parse_shape,
)
from inferd_bench.http1 import Target
from inferd_bench.phase import Phase
from inferd_bench.progress import ProgressDisplay
from inferd_bench.report import markdown, plot, to_json
from inferd_bench.result import BenchResult, Latency, Point, SearchStep
from inferd_bench.runner import make_runner
from inferd_bench.scenarios import run_scenario
from inferd_bench.stats import summarize
from inferd_bench.workload import build_workload


def check_reachable(target: Target, timeout_s: float = 5.0) -> None:
    """Fail early, with a message a person can act on, when nothing listens at the URL."""
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout_s):
            pass
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise BenchError(
            f"cannot connect to {target.url}: {reason}; is the server running?"
        ) from None


def run_bench(config: BenchConfig) -> BenchResult:
    """Run one benchmark as configured and return everything it measured."""
    config.check()
    try:
        target = Target.parse(config.url)
    except ValueError as error:
        raise BenchError(str(error)) from None
    check_reachable(target)
    workload = build_workload(config, target)
    notes: list[str] = []
    workers = config.workers
    if config.scenario == "single-stream" and workers > 1:
        notes.append("single-stream sends one request at a time: --workers ignored")
        workers = 1
    started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    runner = make_runner(target, workload, workers)
    display = ProgressDisplay(runner.counters, workers) if config.progress else None

    def measure(phase: Phase) -> Point:
        if display is not None:
            display.phase(phase.label, phase.warmup_s + (0 if phase.requests else phase.duration_s))
        result = runner.run(phase)
        point = summarize(
            result,
            concurrency=None if phase.mode == "open" else phase.concurrency,
            target_rate=phase.rate if phase.mode == "open" else None,
            streaming=workload.streaming,
        )
        if display is not None:
            display.finished(point)
        return point

    try:
        with display if display is not None else contextlib.nullcontext():
            outcome = run_scenario(config, measure)
    finally:
        runner.close()
    settings = asdict(replace(config, samples=None, eval_data=None))
    settings.update(samples=str(config.samples or ""), eval_data=str(config.eval_data or ""))
    settings["headers"] = sorted(settings["headers"])  # names only: values may be secrets
    return BenchResult(
        url=target.url,
        model=config.model,
        protocol=workload.protocol,
        scenario=config.scenario,
        source=workload.source,
        workers=workers,
        started_at=started,
        settings=settings,
        points=outcome.points,
        headline=outcome.headline,
        best_rate=outcome.best_rate,
        search=outcome.search,
        notes=notes + outcome.notes,
        machine=machine(),
    )


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        names = (line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        cpu = next(names, cpu)
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loop": loop_factory()[1],
        "platform": platform.platform(),
    }


__all__ = [
    "PROTOCOLS",
    "SCENARIOS",
    "BenchConfig",
    "BenchError",
    "BenchResult",
    "Latency",
    "Point",
    "SearchStep",
    "markdown",
    "parse_header",
    "parse_levels",
    "parse_shape",
    "plot",
    "run_bench",
    "to_json",
]
