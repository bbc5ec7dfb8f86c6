"""Who used the CPUs during each load level: the server (all its processes), the load
generator (it reports its own), and everything else on the machine.

Two cores are shared by the server, the generator and, on a shared machine, other people's
work; a peer that spreads over several processes (LitServe, MLServer, Ray) can use both
cores where a one-process server is held to one by the GIL. These columns show which.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable

from bench.harness.cpu import cpu_busy_seconds, process_cpu_seconds


class CpuSampler:
    """Samples, every `period` seconds, the CPU seconds a server's processes and the whole
    machine have used, so any window (Unix times) can be charged afterwards."""

    def __init__(
        self, processes: Callable[[], list[int]], period: float = 0.25, rescan_every: int = 8
    ) -> None:
        self.processes = processes  # scans all of /proc: called every `rescan_every` samples
        self.period = period
        self.rescan_every = rescan_every
        self._pids: list[int] = []
        self.times: list[float] = []
        self.server: list[float] = []  # cumulative CPU seconds of the server's processes
        self.machine: list[float] = []  # cumulative busy CPU seconds of the machine
        self._last: dict[int, float] = {}  # per process: last seen, so exits keep their share
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        if len(self.times) % self.rescan_every == 0:
            self._pids = self.processes()
        for pid in self._pids:
            self._last[pid] = max(self._last.get(pid, 0.0), process_cpu_seconds(pid))
        self.times.append(time.time())
        self.server.append(sum(self._last.values()))
        self.machine.append(cpu_busy_seconds())

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def shares(self, start: float, end: float) -> tuple[float, float] | None:
        """(server, machine) CPU used in [start, end] as shares of one CPU, from the samples
        closest inside the window; None when the window holds fewer than two samples."""
        i = bisect.bisect_left(self.times, start)
        j = bisect.bisect_right(self.times, end) - 1
        if j <= i:
            return None
        seconds = self.times[j] - self.times[i]
        return (
            (self.server[j] - self.server[i]) / seconds,
            (self.machine[j] - self.machine[i]) / seconds,
        )
