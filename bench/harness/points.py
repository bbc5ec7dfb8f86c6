"""One measured point: wrk against a running server at one concurrency, with the CPU each side
used, what else ran meanwhile, and (for inferd) the batches its /metrics saw."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import BenchError
from bench.harness.cpu import (
    children_cpu_seconds,
    cpu_busy_seconds,
    process_cpu_seconds,
    thread_cpu_seconds,
    wait_quiet,
)
from bench.harness.report import table
from bench.harness.servers import Server, http
from bench.harness.wrk import Body, run_wrk, write_wrk_script


@dataclass
class Point:
    """One wrk run against one target at one concurrency."""

    section: str
    target: str
    model: str | None
    concurrency: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]
    non_2xx: int
    wrk_cpu: float  # fraction of one CPU the generator used
    server_cpu: float  # fraction of one CPU the server used (all threads)
    loop_cpu: float  # ... of which its main thread: the event loop (HTTP, codecs, batcher)
    other_cpu: float  # everything else on the machine (other users' work), fraction of one CPU
    batches: int | None = None
    mean_batch: float | None = None  # items per batch the server ran (inferd_batch_size)
    model_ms: float | None = None  # mean model-stage time per item = its batch's run time
    queue_ms: float | None = None  # mean time an item waited for its batch to start
    notes: list[str] = field(default_factory=list)


_SERIES = re.compile(
    r"^(inferd_batch_size|inferd_stage_seconds)_(sum|count)\{([^}]*)\}\s+(\S+)$", re.MULTILINE
)


def scrape(server: Server) -> dict[tuple[str, str], tuple[float, float]]:
    """(model, "batch" or a stage name) -> (sum, count), from inferd's /metrics:
    inferd_batch_size (items per batch) and inferd_stage_seconds (queue, model, ...)."""
    status, _, body = http("GET", server.url + "/metrics")
    if status != 200:
        raise BenchError(f"GET /metrics answered {status}")
    stats: dict[tuple[str, str], list[float]] = {}
    for metric, kind, labels, value in _SERIES.findall(body.decode()):
        label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        what = "batch" if metric == "inferd_batch_size" else label.get("stage", "?")
        entry = stats.setdefault((label.get("model", "?"), what), [0.0, 0.0])
        entry[0 if kind == "sum" else 1] += float(value)
    return {key: (s, c) for key, (s, c) in stats.items()}


def mean_between(
    before: dict[tuple[str, str], tuple[float, float]],
    after: dict[tuple[str, str], tuple[float, float]],
    key: tuple[str, str],
) -> tuple[float | None, int]:
    s0, c0 = before.get(key, (0.0, 0.0))
    s1, c1 = after.get(key, (0.0, 0.0))
    count = int(c1 - c0)
    return ((s1 - s0) / count if count else None), count


class Runner:
    def __init__(
        self, workdir: Path, duration: float, warmup: float, quiet_s: float = 0.0, log: bool = True
    ) -> None:
        self.quiet_s = quiet_s
        self.workdir = workdir
        self.duration = duration
        self.warmup = warmup
        self.points: list[Point] = []
        self.log = log
        self._scripts: dict[str, Path] = {}

    def point(
        self,
        section: str,
        target: str,
        server: Server,
        path: str,
        body: Body,
        concurrency: int,
        model: str | None = None,
    ) -> Point:
        script = self._scripts.get(body.name)
        if script is None:
            script = self._scripts[body.name] = write_wrk_script(self.workdir, body)
        url = server.url + path
        if self.quiet_s > 0:
            wait_quiet(self.quiet_s)
        if self.warmup > 0:
            run_wrk(url, script, concurrency, self.warmup)
            time.sleep(0.3)  # let requests cut off by the end of the warm-up drain
        before = scrape(server) if model else {}
        busy0, wrk0, srv0, loop0 = (
            cpu_busy_seconds(),
            children_cpu_seconds(),
            process_cpu_seconds(server.pid),
            thread_cpu_seconds(server.pid),
        )
        summary, output = run_wrk(url, script, concurrency, self.duration)
        busy1, wrk1, srv1, loop1 = (
            cpu_busy_seconds(),
            children_cpu_seconds(),
            process_cpu_seconds(server.pid),
            thread_cpu_seconds(server.pid),
        )
        if not server.alive():
            raise BenchError(f"{server.name} died during the run:\n{server.tail()}")
        seconds = summary["duration_us"] / 1e6
        wrk_cpu, srv_cpu = (wrk1 - wrk0) / seconds, (srv1 - srv0) / seconds
        other = max(0.0, (busy1 - busy0) / seconds - wrk_cpu - srv_cpu)
        errors = {k: summary[k] for k in ("connect", "read", "write", "timeout")}
        non_2xx = max(summary["status"], summary["non_2xx_text"])
        point = Point(
            section=section,
            target=target,
            model=model,
            concurrency=concurrency,
            duration_s=seconds,
            requests=summary["requests"],
            rps=summary["requests"] / seconds,
            p50_ms=summary["p50_us"] / 1000,
            p75_ms=summary["p75_us"] / 1000,
            p90_ms=summary["p90_us"] / 1000,
            p99_ms=summary["p99_us"] / 1000,
            mean_ms=summary["mean_us"] / 1000,
            max_ms=summary["max_us"] / 1000,
            errors=errors,
            non_2xx=non_2xx,
            wrk_cpu=wrk_cpu,
            server_cpu=srv_cpu,
            loop_cpu=(loop1 - loop0) / seconds,
            other_cpu=other,
        )
        if model:
            time.sleep(0.3)
            after = scrape(server)
            point.mean_batch, point.batches = mean_between(before, after, (model, "batch"))
            model_s, _ = mean_between(before, after, (model, "model"))
            queue_s, _ = mean_between(before, after, (model, "queue"))
            point.model_ms = model_s * 1000 if model_s is not None else None
            point.queue_ms = queue_s * 1000 if queue_s is not None else None
        if non_2xx or summary["requests"] == 0:
            raise BenchError(
                f"{target} c={concurrency}: {non_2xx} non-2xx answers out of "
                f"{summary['requests']}; every answer must be 200. Server log:\n{server.tail()}"
                f"\nwrk output:\n{output}"
            )
        # Socket errors other than the connections wrk itself cuts at the end are failures.
        if (
            errors["connect"]
            or errors["write"]
            or errors["timeout"]
            or errors["read"] > concurrency
        ):
            raise BenchError(f"{target} c={concurrency}: socket errors {errors}\n{output}")
        self.points.append(point)
        if self.log:
            batch = f" batch {point.mean_batch:5.1f}" if point.mean_batch else ""
            print(
                f"  {target:<24} c={concurrency:<3} {point.rps:9.1f} req/s  p50 "
                f"{point.p50_ms:7.2f} ms  p99 {point.p99_ms:7.2f} ms  cpu wrk {wrk_cpu:4.0%} "
                f"server {srv_cpu:4.0%} (loop {point.loop_cpu:4.0%}) other {other:4.0%}{batch}",
                flush=True,
            )
        return point


def find_point(points: list[Point], target: str, concurrency: int) -> Point | None:
    for p in points:
        if p.target == target and p.concurrency == concurrency:
            return p
    return None


def points_table(points: list[Point]) -> str:
    rows = [
        [
            p.target,
            str(p.concurrency),
            f"{p.rps:,.0f}",
            f"{p.p50_ms:.2f}",
            f"{p.p99_ms:.2f}",
            f"{p.mean_batch:.1f}" if p.mean_batch else "-",
            f"{p.model_ms:.2f}" if p.model_ms is not None else "-",
            f"{p.queue_ms:.2f}" if p.queue_ms is not None else "-",
            f"{p.wrk_cpu:.0%}",
            f"{p.server_cpu:.0%}",
            f"{p.loop_cpu:.0%}",
            f"{p.other_cpu:.0%}",
        ]
        for p in points
    ]
    headers = [
        "target",
        "c",
        "req/s",
        "p50 ms",
        "p99 ms",
        "batch",
        "model ms",
        "queue ms",
        "wrk cpu",
        "srv cpu",
        "loop",
        "other",
    ]
    return table(headers, rows)
