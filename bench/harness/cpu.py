"""Who used the CPUs: the machine as a whole, one process, its main thread, this process's
children (the load generator), read from /proc so a figure can be charged to whoever ran."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_busy_seconds() -> float:
    """Machine-wide busy CPU seconds (all CPUs), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def process_cpu_seconds(pid: int, stat: str | None = None) -> float:
    """user+system CPU seconds of one process (all its threads)."""
    try:
        text = Path(stat or f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    after_name = text.rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / CLK_TCK


def thread_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process's main thread alone (for a server: its event loop)."""
    return process_cpu_seconds(pid, f"/proc/{pid}/task/{pid}/stat")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def add_wait_quiet_option(parser: argparse.ArgumentParser, before: str = "measurement") -> None:
    """`--wait-quiet SECONDS`, which every bench script on a shared machine takes."""
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help=f"before each {before}, wait up to this long for other processes to use "
        "under 25%% of a CPU (a shared machine); 0: don't wait",
    )


def wait_quiet(limit_s: float, threshold: float = 0.25) -> float:
    """Wait (up to limit_s) until other work on the machine uses under `threshold` of a CPU;
    returns the load last seen."""
    deadline = time.monotonic() + limit_s
    while True:
        busy0, mine0 = cpu_busy_seconds(), children_cpu_seconds()
        time.sleep(0.5)
        load = (cpu_busy_seconds() - busy0 - (children_cpu_seconds() - mine0)) / 0.5
        if load < threshold or time.monotonic() >= deadline:
            return load
        print(f"    (waiting for a quieter machine: other load {load:.0%} of a CPU)", flush=True)
