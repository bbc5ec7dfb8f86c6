"""Overload and soak benchmarks of `inferd serve` on the compute-bound CNN.

    .venv/bin/python -m bench.overload                 # overload, 60 s at 3x: ~1.5 minutes
    .venv/bin/python -m bench.overload --quick         # 15 s at 3x: under a minute
    .venv/bin/python -m bench.overload --soak          # soak, 10 minutes at 0.7x
    .venv/bin/python -m bench.overload --soak --minutes 2

One `inferd serve` on a free 127.0.0.1 port serves the CNN of bench/harness/models.py
(batches up to 32, one ORT thread, the server's default queue bound unless `--max-queue`).
Its sustainable rate is measured first: wrk, closed loop, 64 connections. Then an open-loop
client (bench/harness/openloop.py) sends requests at a constant rate, whatever the server
answers, over as many connections as that rate needs (`--connections`). Latencies run from
when each request was sent; how late the generator sent them is reported beside them.

- **overload**: 3x the sustainable rate. Targets: no 5xx; every refusal a 429 with
  Retry-After; the 429s' p99 ≤ 5 ms; the admitted (200) requests' p99 within the deadline
  each request carries (the Inferd-Timeout-Ms header, `--deadline-ms`).
- **soak** (`--soak`): 0.7x for `--minutes`, the server's RSS sampled every few seconds after
  a 30 s warm-up. Targets: RSS growth from the first sample to the last ≤ 5 %; no errors.

Prints each target with its figure and PASS/MISS, and writes the run as JSON to
bench/results/overload-<time>.json (soak-<time>.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import BenchError
from bench.harness.cpu import (
    add_wait_quiet_option,
    cpu_busy_seconds,
    cpu_model,
    process_cpu_seconds,
    wait_quiet,
)
from bench.harness.models import COMPUTE_SHAPE, build_compute_model
from bench.harness.openloop import LAG_S, OpenLoop, OpenLoopResult, percentile, run_loop
from bench.harness.points import Runner
from bench.harness.report import Figure, figure, fmt_value, result_path, table, write_json
from bench.harness.servers import HOST, Server, free_port, run_stopping_servers
from bench.harness.wrk import Body, check_wrk
from bench.serving.workload import COMPUTE, check_infer, make_bodies
from inferd.api.common import TIMEOUT_HEADER
from inferd_bench.http1 import Target, encode_request

SOAK_WARMUP_S = 30.0
CAPACITY_CONCURRENCY = 64
STEADY_AFTER_S = 5.0  # the queue fills and the connections open in the first seconds
LAGGED_NOTE = 0.01  # above this share of late sends, the offered rate was not quite kept


# -- the server --------------------------------------------------------------------------


def write_repository(repo: Path, max_queue: int | None) -> None:
    """The CNN as model `compute`: batches up to 32 started at once, one ORT thread."""
    model_dir = repo / "compute"
    build_compute_model(model_dir / "1" / "model.onnx")
    queue = f", max_queue: {max_queue}" if max_queue else ""
    model_dir.joinpath("model.yaml").write_text(
        "name: compute\n"
        f"batching: {{max_batch_size: 32, max_delay_ms: 0{queue}}}\n"
        "runtime: {threads: 1}\n"
    )


def inferd_server(work: Path) -> Server:
    port = free_port()
    inferd = Path(sys.executable).with_name("inferd")
    argv = [str(inferd if inferd.exists() else "inferd"), "serve", str(work / "repo")]
    argv += ["--host", HOST, "--port", str(port), "--data-dir", str(work / "data")]
    return Server("inferd", argv, port, "/v2/health/ready", work / "inferd.log")


def enough_connections(rate: float, deadline_ms: float) -> int:
    """Connections that carry `rate` even if every answer takes the whole deadline (Little's
    law), within this process's file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(math.ceil(rate * deadline_ms / 1000.0) + 64, max(64, soft - 256))


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for member in tree:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


# -- one open-loop run -------------------------------------------------------------------


def open_loop(
    server: Server,
    request: bytes,
    rate: float,
    seconds: float,
    connections: int,
    max_wait_s: float,
    rss_every_s: float,
    rss_after_s: float,
) -> tuple[OpenLoopResult, dict[str, float], list[tuple[float, int]]]:
    """Run the open loop against `server`: its result, the CPU each side used (shares of
    one CPU), and the server's RSS every `rss_every_s` from `rss_after_s` on, then once
    more after the last answer."""
    client = OpenLoop(server.port, request, rate, seconds, connections, max_wait_s)
    samples: list[tuple[float, int]] = []

    async def sample_rss() -> None:
        started = time.monotonic()
        await asyncio.sleep(rss_after_s)
        while time.monotonic() - started <= seconds:
            elapsed = time.monotonic() - started
            rss = tree_rss_bytes(server.pid)
            samples.append((round(elapsed, 1), rss))
            if len(samples) % max(1, round(30 / rss_every_s)) == 1:
                counts = client.result.status_counts()
                print(
                    f"  {elapsed:5.0f} s  server RSS {rss / 2**20:7.1f} MiB  answers so far "
                    f"{dict(sorted(counts.items()))}",
                    flush=True,
                )
            await asyncio.sleep(rss_every_s)

    async def both() -> OpenLoopResult:
        sampler = asyncio.ensure_future(sample_rss())
        started = time.monotonic()
        try:
            return await client.run()
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            samples.append((round(time.monotonic() - started, 1), tree_rss_bytes(server.pid)))

    busy0, server0 = cpu_busy_seconds(), process_cpu_seconds(server.pid)
    started = time.monotonic()
    result: OpenLoopResult = run_loop(both)
    elapsed = time.monotonic() - started
    busy = (cpu_busy_seconds() - busy0) / elapsed
    server_cpu = (process_cpu_seconds(server.pid) - server0) / elapsed
    generator_cpu = result.generator_cpu_s / elapsed
    cpu = {
        "server": server_cpu,
        "generator": generator_cpu,
        "other": max(0.0, busy - server_cpu - generator_cpu),
    }
    return result, cpu, samples


def answers(result: OpenLoopResult) -> dict[str, int]:
    """The answers grouped as the targets read them."""
    counts = result.status_counts()
    grouped: Counter[str] = Counter()
    for status, count in counts.items():
        if 200 <= status < 300:
            grouped["2xx"] += count
        elif status == 429:
            grouped["429"] += count
        elif 500 <= status < 600:
            grouped["5xx"] += count
        else:
            grouped["other"] += count  # 4xx but 429, and no HTTP answer (status 0)
    grouped["other"] += result.unanswered
    return {key: grouped[key] for key in ("2xx", "429", "5xx", "other")}


def count(section: str, name: str, value: int, bound: int | None = None) -> Figure:
    if bound is None:
        return figure(section, name, value, "count")
    return figure(section, name, value, "count", "<=", bound, fmt="{:,.0f}")


def load_figures(section: str, result: OpenLoopResult, cpu: dict[str, float]) -> list[Figure]:
    """What the generator did: the rate it offered and kept, and who used the CPUs."""
    sent = len(result.statuses) + result.unanswered  # retried sends count once
    lagged = result.lagged()
    lags = np.frombuffer(result.lags, dtype=np.float64) * 1000.0
    return [
        figure(section, "offered rate (constant, open loop)", result.rate, "req/s"),
        count(section, "requests scheduled", result.scheduled),
        count(section, "requests sent", sent),
        count(section, f"generator lagged (sent > {LAG_S * 1000:.0f} ms late)", lagged),
        count(section, "not sent (no free connection within the deadline)", result.not_sent),
        figure(section, "send lateness p99", percentile(lags, 99), "ms"),
        count(section, "connections opened", result.connections_opened),
        figure(section, "server CPU (share of one CPU)", cpu["server"], "%"),
        figure(section, "generator CPU", cpu["generator"], "%"),
        figure(section, "other CPU on the machine", cpu["other"], "%"),
    ]


# -- the two scenarios ---------------------------------------------------------------------


def overload_figures(
    result: OpenLoopResult,
    cpu: dict[str, float],
    capacity: float,
    deadline_ms: float,
    rss: list[tuple[float, int]],
) -> list[Figure]:
    grouped = answers(result)
    refused = grouped["429"] + grouped["5xx"] + grouped["other"]
    ok_ms = result.latencies_ms(200)
    refused_ms = result.latencies_ms(429)
    missing = result.missing_retry_after(429)
    s = "overload"
    return [
        figure(s, "sustainable rate (closed loop, c=64)", capacity, "req/s"),
        *load_figures(s, result, cpu),
        count(s, "answered 2xx", grouped["2xx"]),
        count(s, "answered 429", grouped["429"]),
        count(s, "answered 5xx", grouped["5xx"], 0),
        count(s, "other (4xx but 429, no answer)", grouped["other"]),
        figure(
            s,
            "refusals that were 429",
            grouped["429"] / refused if refused else None,
            "%",
            ">=",
            1.0,
            fmt="{:.0%}",
        ),
        count(s, "429s without Retry-After", missing, 0),
        figure(s, "2xx answered per second", grouped["2xx"] / result.window_s, "req/s"),
        figure(s, "429 latency p50", percentile(refused_ms, 50), "ms"),
        figure(s, "429 latency p99", percentile(refused_ms, 99), "ms", "<=", 5.0),
        figure(
            s,
            f"  429 p99 after the first {STEADY_AFTER_S:.0f} s",
            percentile(result.latencies_ms(429, STEADY_AFTER_S), 99),
            "ms",
        ),
        figure(s, "200 latency p50", percentile(ok_ms, 50), "ms"),
        figure(
            s, "200 latency p99 (vs the deadline)", percentile(ok_ms, 99), "ms", "<=", deadline_ms
        ),
        figure(s, "200 latency max", float(ok_ms.max()) if ok_ms.size else None, "ms"),
        figure(
            s,
            f"  200 p99 after the first {STEADY_AFTER_S:.0f} s",
            percentile(result.latencies_ms(200, STEADY_AFTER_S), 99),
            "ms",
        ),
        *rss_figures(s, rss),
    ]


def rss_slope_mib_per_min(rss: list[tuple[float, int]]) -> float | None:
    """The RSS samples' least-squares slope: growth that one lucky last sample would hide."""
    if len(rss) < 3:
        return None
    seconds = np.array([t for t, _ in rss], dtype=np.float64)
    mib = np.array([value for _, value in rss], dtype=np.float64) / 2**20
    return float(np.polyfit(seconds, mib, 1)[0] * 60.0)


def soak_figures(
    result: OpenLoopResult, cpu: dict[str, float], capacity: float, rss: list[tuple[float, int]]
) -> list[Figure]:
    grouped = answers(result)
    ok_ms = result.latencies_ms(200)
    mib = [value / 2**20 for _, value in rss]
    growth = (mib[-1] - mib[0]) / mib[0] if len(mib) >= 2 else None
    s = "soak"
    return [
        figure(s, "sustainable rate (closed loop, c=64)", capacity, "req/s"),
        *load_figures(s, result, cpu),
        count(s, "answered 2xx", grouped["2xx"]),
        count(
            s,
            "errors (every answer but 2xx, and none)",
            len(result.statuses) - grouped["2xx"] + result.unanswered,
            0,
        ),
        figure(s, "200 latency p50", percentile(ok_ms, 50), "ms"),
        figure(s, "200 latency p99", percentile(ok_ms, 99), "ms"),
        count(s, f"RSS samples (after {SOAK_WARMUP_S:.0f} s)", len(mib)),
        *rss_figures(s, rss),
        figure(s, "RSS trend (least squares)", rss_slope_mib_per_min(rss), "MiB/min"),
        figure(s, "RSS growth, first to last", growth, "%", "<=", 0.05, fmt="{:.0%}"),
    ]


def rss_figures(section: str, rss: list[tuple[float, int]]) -> list[Figure]:
    mib = [value / 2**20 for _, value in rss]
    return [
        figure(section, "server RSS, first sample", mib[0] if mib else None, "MiB"),
        figure(section, "server RSS, after the last answer", mib[-1] if mib else None, "MiB"),
        figure(section, "server RSS, highest sample", max(mib) if mib else None, "MiB"),
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_wrk()
    with (
        tempfile.TemporaryDirectory(prefix="inferd-bench-overload-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        write_repository(work / "repo", args.max_queue)
        x = np.random.default_rng(3).standard_normal((1, *COMPUTE_SHAPE)).astype(np.float32)
        body: Body = make_bodies(work, b"", x)["compute_binary"]
        headers = {**body.headers, TIMEOUT_HEADER: f"{args.deadline_ms:g}"}
        server = inferd_server(work)
        stack.callback(server.stop)
        server.start()
        check_infer(server, COMPUTE, body)
        request = encode_request(Target(HOST, server.port), "POST", COMPUTE, body.data, headers)

        print(
            f"sustainable rate: wrk, closed loop, c={CAPACITY_CONCURRENCY}, "
            f"{args.capacity_seconds:g} s (after 2 s of warm-up)",
            flush=True,
        )
        runner = Runner(work, args.capacity_seconds, 2.0, args.wait_quiet)
        point = runner.point(
            "capacity", "inferd compute", server, COMPUTE, body, CAPACITY_CONCURRENCY, "compute"
        )
        capacity = point.rps
        rate = capacity * args.factor
        seconds = args.minutes * 60.0 if args.soak else args.seconds
        what = "soak" if args.soak else "overload"
        connections = args.connections or enough_connections(rate, args.deadline_ms)
        print(
            f"{what}: {rate:,.0f} req/s open loop ({args.factor:g}x) for {seconds:g} s, at most "
            f"{connections} connections, deadline {args.deadline_ms:g} ms",
            flush=True,
        )
        time.sleep(1.0)  # let the closed loop's connections close
        if args.wait_quiet > 0:
            wait_quiet(args.wait_quiet)
        result, cpu, rss = open_loop(
            server,
            request,
            rate,
            seconds,
            connections,
            args.deadline_ms / 1000.0,
            args.sample_every,
            SOAK_WARMUP_S if args.soak else 0.0,
        )
        if not server.alive():
            raise BenchError(f"{server.name} died during the run:\n{server.tail()}")
        log = server.log.read_text(errors="replace")
        server.stop()

    if args.soak:
        figures = soak_figures(result, cpu, capacity, rss)
    else:
        figures = overload_figures(result, cpu, capacity, args.deadline_ms, rss)
    return {
        "scenario": what,
        "cpu": cpu_model(),
        "settings": {
            "factor": args.factor,
            "seconds": seconds,
            "deadline_ms": args.deadline_ms,
            "connections": connections,
            "max_queue": args.max_queue,
            "capacity_seconds": args.capacity_seconds,
            "rss_every_s": args.sample_every,
        },
        "capacity_point": asdict(point),
        "statuses": {str(k): v for k, v in sorted(result.status_counts().items())},
        "failures": dict(result.failures),
        "unanswered": result.unanswered,
        "not_sent": result.not_sent,
        "samples": {str(k): v for k, v in result.samples.items()},
        "rss_samples": rss,
        "figures": [asdict(f) for f in figures],
        "server_log_errors": [line for line in log.splitlines() if " ERROR " in line][:50],
    }


# -- report --------------------------------------------------------------------------------


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "%":
        return f"{value:.1%}"
    if unit.startswith("MiB"):
        return f"{value:,.2f} {unit}"
    return fmt_value(value, unit)


def report(result: dict[str, Any]) -> str:
    figures = [Figure(**f) for f in result["figures"]]
    rows = [[f.name, show(f.value, f.unit), f.target or "", f.verdict or ""] for f in figures]
    lines = [table(["figure", "value", "target", "verdict"], rows, "lrll")]
    lines.append(f"\nstatuses: {result['statuses']}")
    if result["failures"] or result["unanswered"]:
        lines.append(f"no HTTP answer: {result['failures']}, unanswered {result['unanswered']}")
    for kind, sample in result["samples"].items():
        lines.append(f"  first {kind} answer: {sample}")
    scheduled = next(f.value for f in figures if f.name == "requests scheduled") or 1
    late = sum(f.value or 0 for f in figures if f.name.startswith(("generator lagged", "not sent")))
    if late / scheduled > LAGGED_NOTE:
        lines.append(
            f"note: {late / scheduled:.1%} of the requests left late or never (the generator "
            "or its connections could not keep the schedule): the offered rate fell short"
        )
    if result["server_log_errors"]:
        lines.append("server log errors:\n" + "\n".join(result["server_log_errors"][:10]))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs: 15 s, or a 2 min soak")
    parser.add_argument("--soak", action="store_true", help="the soak instead of the overload")
    parser.add_argument("--seconds", type=float, default=None, help="overload seconds (60)")
    parser.add_argument("--minutes", type=float, default=None, help="soak minutes (10)")
    parser.add_argument(
        "--factor", type=float, default=None, help="offered rate / sustainable (3, soak 0.7)"
    )
    parser.add_argument(
        "--deadline-ms",
        type=float,
        default=1000.0,
        help="each request's deadline, sent as the Inferd-Timeout-Ms header (1000)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=None,
        help="the open loop's connections at most; default: enough to carry the offered "
        "rate for a whole deadline (rate x deadline + 64), so the excess really reaches the "
        "server",
    )
    parser.add_argument(
        "--capacity-seconds", type=float, default=None, help="closed-loop seconds (10, quick 5)"
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=None,
        help="the model's batching.max_queue (default: the server's own)",
    )
    parser.add_argument(
        "--sample-every", type=float, default=5.0, help="seconds between RSS samples (5)"
    )
    add_wait_quiet_option(parser, "measurement")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    args.seconds = args.seconds or (15.0 if args.quick else 60.0)
    args.minutes = args.minutes or (2.0 if args.quick else 10.0)
    args.factor = args.factor or (0.7 if args.soak else 3.0)
    args.capacity_seconds = args.capacity_seconds or (5.0 if args.quick else 10.0)
    if args.soak and args.minutes * 60.0 <= SOAK_WARMUP_S + 2 * args.sample_every:
        parser.error(f"--minutes must leave RSS samples after the {SOAK_WARMUP_S:.0f} s warm-up")

    result = run_stopping_servers(lambda: run(args))
    if isinstance(result, int):
        return result
    title = "soak" if args.soak else "overload"
    print(f"\n{title} of the compute-bound CNN ({result['cpu']})")
    print(report(result))
    out = args.out or result_path(title)
    write_json(result, out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
