"""Joules per prediction: from real counters where the machine has them, else an estimate.

A prediction's energy is its CPU time (and GPU time) times a rate in watts:

- `rapl`: Linux powercap (`/sys/class/powercap/intel-rapl:N/energy_uj`, the CPU packages'
  energy counters). The rate is the packages' joules over the machine's busy CPU seconds
  (`/proc/stat`) in the last interval, so a prediction is charged its share of the package
  power by CPU time, whoever else runs. Counters wrap at `max_energy_range_uj`; a wrap is
  added back, never read as a negative.
- `nvml`: an NVIDIA GPU's total-energy counter (nvidia-ml-py); the rate is its mean power
  over the last interval, charged to GPU time.
- `estimate`, where neither can be read: CPU time x watts per core (`--cpu-watts`, default
  `DEFAULT_WATTS_PER_CORE`: a server CPU's TDP shared by its cores, 250 W / 24 ≈ 10 W).

Every figure carries its method. A powercap tree that cannot be read (absent, not readable
without root, or not counting) falls back to the estimate and says why, once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("inferd.monitor")

DEFAULT_WATTS_PER_CORE = 10.0
POWERCAP = Path("/sys/class/powercap")
PROC_STAT = Path("/proc/stat")
REFRESH_S = 1.0  # rates are re-read at most this often, so a prediction costs no file reads


class Unreadable(Exception):
    """A counter that cannot be used; its message says why (shown in the fallback note)."""


class Powercap:
    """The CPU packages' RAPL energy counters, as one total in joules that never wraps."""

    def __init__(self, root: Path = POWERCAP) -> None:
        domains = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
        if not domains:
            raise Unreadable(f"no RAPL package domains under {root}")
        self._domains: list[tuple[Path, float]] = []
        for domain in domains:
            try:
                wrap = float((domain / "max_energy_range_uj").read_text())
                float((domain / "energy_uj").read_text())
            except (OSError, ValueError) as error:
                raise Unreadable(f"cannot read {domain}/energy_uj: {error}") from None
            if wrap <= 0:
                raise Unreadable(f"{domain}/max_energy_range_uj is {wrap:g}")
            self._domains.append((domain / "energy_uj", wrap))
        self._last = [self._raw(path) for path, _ in self._domains]
        self._joules = 0.0

    @staticmethod
    def _raw(path: Path) -> float:
        try:
            return float(path.read_text())
        except (OSError, ValueError) as error:
            raise Unreadable(f"cannot read {path}: {error}") from None

    def joules(self) -> float:
        """Joules counted since this reader was made, every wrap-around added back."""
        for index, (path, wrap) in enumerate(self._domains):
            now = self._raw(path)
            delta = now - self._last[index]
            if delta < 0:  # the counter passed max_energy_range_uj and started again
                delta += wrap
            self._joules += delta / 1e6
            self._last[index] = now
        return self._joules


def busy_cpu_seconds(stat: Path = PROC_STAT) -> float:
    """CPU seconds the whole machine has spent busy (not idle or waiting), from /proc/stat."""
    fields = stat.read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Rate:
    """Watts per busy CPU (or GPU) second, and how they were found."""

    watts: float
    method: str  # "rapl" | "nvml" | "estimate"


class CpuPower:
    """The watts a busy CPU second costs: RAPL where readable, else the estimate."""

    def __init__(
        self,
        watts_per_core: float | None = None,
        root: Path = POWERCAP,
        stat: Path = PROC_STAT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._estimate = Rate(watts_per_core or DEFAULT_WATTS_PER_CORE, "estimate")
        self._stat = stat
        self._clock = clock
        self._lock = threading.Lock()
        self.note = ""
        self._powercap: Powercap | None = None
        try:
            self._powercap = Powercap(root)
            self._mark = (self._powercap.joules(), busy_cpu_seconds(stat), clock())
        except (Unreadable, OSError, ValueError) as error:
            self._fall_back(str(error), given=watts_per_core is not None, quiet=True)
        self._rate = self._estimate if self._powercap is None else Rate(0.0, "rapl")
        self._primed = self._powercap is None

    def _fall_back(self, why: str, given: bool = False, quiet: bool = False) -> None:
        """Use the estimate from now on; `note` says why (logged unless `quiet`: at start the
        server logs every note itself)."""
        self._powercap = None
        source = "from --cpu-watts" if given else "the default; set it with --cpu-watts"
        self.note = (
            f"energy is an estimate, {self._estimate.watts:g} W per busy core ({source}): "
            f"the RAPL counters cannot be used ({why})"
        )
        if not quiet:
            logger.warning("%s", self.note)

    def rate(self) -> Rate:
        """The current rate; RAPL's is re-measured at most every REFRESH_S seconds."""
        powercap = self._powercap
        if powercap is None:
            return self._estimate
        now = self._clock()
        if now - self._mark[2] < REFRESH_S and self._primed:
            return self._rate
        with self._lock:
            if self._powercap is None:
                return self._estimate
            try:
                joules, busy = powercap.joules(), busy_cpu_seconds(self._stat)
            except (Unreadable, OSError, ValueError) as error:
                self._fall_back(str(error))
                return self._estimate
            last_joules, last_busy, _ = self._mark
            if busy - last_busy >= 0.05:  # enough CPU use to measure a rate on
                self._rate = Rate((joules - last_joules) / (busy - last_busy), "rapl")
                self._primed = True
                self._mark = (joules, busy, now)
            elif not self._primed:
                return self._estimate  # too early to know: the estimate, labelled so
        return self._rate


class GpuPower:
    """A GPU's mean power over the last interval, from NVML's total-energy counter."""

    def __init__(self, device: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        try:
            import pynvml
        except ImportError:
            raise Unreadable(
                "nvidia-ml-py is not installed (pip install 'inferd[monitor]')"
            ) from None
        try:
            pynvml.nvmlInit()
            self._handle: Any = pynvml.nvmlDeviceGetHandleByIndex(device)
            self._read: Callable[[Any], int] = pynvml.nvmlDeviceGetTotalEnergyConsumption
            millijoules = self._read(self._handle)
        except pynvml.NVMLError as error:
            raise Unreadable(f"NVML: {error}") from None
        self._clock = clock
        self._mark = (millijoules / 1000, clock())
        self._rate = Rate(0.0, "nvml")
        self._lock = threading.Lock()

    def rate(self) -> Rate:
        now = self._clock()
        if now - self._mark[1] < REFRESH_S:
            return self._rate
        with self._lock:
            joules = self._read(self._handle) / 1000
            last_joules, last_time = self._mark
            if now > last_time:
                self._rate = Rate((joules - last_joules) / (now - last_time), "nvml")
                self._mark = (joules, now)
        return self._rate


def gpu_power() -> GpuPower | None:
    """NVML's reader when this machine has an NVIDIA GPU and the library, else None."""
    try:
        return GpuPower()
    except Unreadable as error:
        logger.debug("no GPU energy counter: %s", error)
        return None


__all__ = [
    "DEFAULT_WATTS_PER_CORE",
    "CpuPower",
    "GpuPower",
    "Powercap",
    "Rate",
    "Unreadable",
    "busy_cpu_seconds",
    "gpu_power",
]
