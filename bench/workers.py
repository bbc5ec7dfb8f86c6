"""`inferd serve --workers 2` against `--workers 1`, side by side in one run.

    .venv/bin/python -m bench.workers            # ~2 minutes
    .venv/bin/python -m bench.workers --quick    # ~1 minute, noisier

The digits CNN over V2 JSON at 64 connections (wrk, one thread, keep-alive), the two servers
up at once and measured in alternating rounds, so drift on a shared machine lands on both.
Each point reports the CPU each side used: on a 2-core machine the load generator takes a
share of the cores the workers would use. Targets (issue 17): `--workers 2` at least 1.6x the
req/s of `--workers 1`, and its p99 at most 3x its p50. Also c=1 p50 of both (information).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness.cpu import (
    add_wait_quiet_option,
    children_cpu_seconds,
    cpu_busy_seconds,
    cpu_model,
    process_cpu_seconds,
    wait_quiet,
)
from bench.harness.report import figure, figures_table, result_path, table, write_json
from bench.harness.servers import Server, inferd_serve, run_stopping_servers
from bench.harness.wrk import check_wrk, run_wrk, write_wrk_script
from bench.serving.workload import DIGITS, DIGITS_DIR, DIGITS_SAMPLE, make_bodies

CONCURRENCY = 64


@dataclass
class Round:
    target: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    client_cpu: float  # fraction of one CPU wrk used
    server_cpu: float  # ... the server's processes used (every worker)
    other_cpu: float


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (the supervisor, its workers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            queue.extend(int(c) for c in children)
    return found


def tree_cpu_seconds(pid: int) -> float:
    return sum(process_cpu_seconds(p) for p in process_tree(pid))


def measure(server: Server, script: Path, target: str, concurrency: int, seconds: float) -> Round:
    url = server.url + DIGITS
    busy0, client0, server0 = (
        cpu_busy_seconds(),
        children_cpu_seconds(),
        tree_cpu_seconds(server.pid),
    )
    summary, output = run_wrk(url, script, concurrency, seconds)
    busy1, client1, server1 = (
        cpu_busy_seconds(),
        children_cpu_seconds(),
        tree_cpu_seconds(server.pid),
    )
    if max(summary["status"], summary["non_2xx_text"]) or summary["requests"] == 0:
        raise SystemExit(f"{target}: answers other than 200:\n{output}\n{server.tail()}")
    duration = summary["duration_us"] / 1e6
    client, used = (client1 - client0) / duration, (server1 - server0) / duration
    round_ = Round(
        target,
        concurrency,
        summary["requests"] / duration,
        summary["p50_us"] / 1000,
        summary["p99_us"] / 1000,
        client,
        used,
        max(0.0, (busy1 - busy0) / duration - client - used),
    )
    print(
        f"  {target:<12} c={concurrency:<3} {round_.rps:9.1f} req/s  p50 {round_.p50_ms:6.2f} ms  "
        f"p99 {round_.p99_ms:6.2f} ms  cpu: client {client:4.0%} server {used:4.0%} "
        f"other {round_.other_cpu:4.0%}",
        flush=True,
    )
    return round_


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_wrk()
    started = time.monotonic()
    print(
        f"inferd --workers benchmark: {cpu_model()}, {os.cpu_count()} CPUs; "
        f"{args.rounds} rounds x {args.duration:g} s per server and concurrency\n",
        flush=True,
    )
    rounds: list[Round] = []
    with (
        tempfile.TemporaryDirectory(prefix="inferd-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        repo = workdir / "repo"
        shutil.copytree(DIGITS_DIR, repo / "digits")
        compute_x = np.zeros((1, 1), dtype=np.float32)  # the bodies builder wants one
        bodies = make_bodies(workdir, DIGITS_SAMPLE.read_bytes(), compute_x)
        script = write_wrk_script(workdir, bodies["digits_json"])
        servers: dict[str, Server] = {}
        for workers in (1, 2):
            server = inferd_serve(
                f"--workers {workers}",
                repo,
                workdir / f"inferd-{workers}.log",
                "--workers",
                str(workers),
                "--data-dir",
                str(workdir / f"data-{workers}"),
            )
            stack.callback(server.stop)
            server.start()
            servers[server.name] = server
        for server in servers.values():  # warm both up: caches, connections, the GC
            run_wrk(server.url + DIGITS, script, CONCURRENCY, args.warmup)
        for number in range(args.rounds):
            print(f"round {number + 1}", flush=True)
            order = list(servers.items())
            if number % 2:
                order.reverse()
            for concurrency in (CONCURRENCY, 1):
                for name, server in order:
                    if args.wait_quiet > 0:
                        wait_quiet(args.wait_quiet)
                    rounds.append(measure(server, script, name, concurrency, args.duration))

    def median(target: str, concurrency: int, field: str) -> float:
        return statistics.median(
            getattr(r, field) for r in rounds if r.target == target and r.concurrency == concurrency
        )

    one, two = "--workers 1", "--workers 2"
    ratio = median(two, CONCURRENCY, "rps") / median(one, CONCURRENCY, "rps")
    tail = median(two, CONCURRENCY, "p99_ms") / median(two, CONCURRENCY, "p50_ms")
    figures = [
        figure("workers", "--workers 2 / --workers 1 req/s, c=64", ratio, "x", ">=", 1.6),
        figure("workers", "--workers 2 p99 / p50, c=64", tail, "x", "<=", 3.0),
        figure("workers", "--workers 1 req/s, c=64", median(one, CONCURRENCY, "rps"), "req/s"),
        figure("workers", "--workers 2 req/s, c=64", median(two, CONCURRENCY, "rps"), "req/s"),
        figure(
            "workers",
            "client CPU at c=64 (--workers 2)",
            median(two, CONCURRENCY, "client_cpu"),
            "%",
        ),
        figure("workers", "--workers 1 p50, c=1", median(one, 1, "p50_ms"), "ms"),
        figure("workers", "--workers 2 p50, c=1", median(two, 1, "p50_ms"), "ms"),
    ]
    rows = [
        [
            target,
            str(concurrency),
            f"{median(target, concurrency, 'rps'):,.0f}",
            f"{median(target, concurrency, 'p50_ms'):.2f}",
            f"{median(target, concurrency, 'p99_ms'):.2f}",
            f"{median(target, concurrency, 'client_cpu'):.0%}",
            f"{median(target, concurrency, 'server_cpu'):.0%}",
            f"{median(target, concurrency, 'other_cpu'):.0%}",
        ]
        for concurrency in (CONCURRENCY, 1)
        for target in (one, two)
    ]
    print(
        "\nmedians over the rounds (CPU as a fraction of one core):\n"
        + table(["server", "c", "req/s", "p50 ms", "p99 ms", "client", "server", "other"], rows)
    )
    print("\n" + figures_table(figures))
    print(f"\ntook {time.monotonic() - started:.0f} s")
    return {
        "rounds": [asdict(r) for r in rounds],
        "figures": [asdict(f) for f in figures],
        "settings": vars(args),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 4 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per point")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=None)
    add_wait_quiet_option(parser)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 2, 4.0
    result = run_stopping_servers(lambda: run(args), "the workers benchmark")
    if isinstance(result, int):
        return result
    write_json(result, args.out or result_path("workers"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
