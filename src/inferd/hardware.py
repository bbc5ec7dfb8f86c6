"""What this machine is: its CPU, and the instruction-set features that decide how fast a
quantized or reduced-precision model runs on it (and which it lacks)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path

FEATURES = {
    "avx2": "avx2",
    "fma": "fma",
    "avx512f": "avx512",
    "avx512_vnni": "avx512-vnni",
    "avx_vnni": "avx-vnni",
    "avx512_bf16": "avx512-bf16",
    "avx512_fp16": "avx512-fp16",
    "amx_tile": "amx",
    "amx_int8": "amx-int8",
    "amx_bf16": "amx-bf16",
    "f16c": "f16c",
}
"""/proc/cpuinfo flags that matter to inference, and the names inferd shows them by."""


@dataclass(frozen=True)
class Cpu:
    model: str
    cores: int
    """Logical CPUs this process may run on."""
    features: tuple[str, ...]
    """The FEATURES it has, by inferd's names."""

    @property
    def lacks(self) -> tuple[str, ...]:
        return tuple(name for name in FEATURES.values() if name not in self.features)

    @property
    def vnni(self) -> bool:
        """int8 dot products in one instruction: what makes int8 matmuls fast and exact."""
        return "avx512-vnni" in self.features or "avx-vnni" in self.features

    def describe(self) -> str:
        """One line for reports: the CPU, its cores, what it has and what it lacks."""
        has = ", ".join(self.features) or "none of note"
        lacks = ", ".join(self.lacks) or "nothing of note"
        return f"{self.model}, {self.cores} cores; has {has}; lacks {lacks}"


@cache
def cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> Cpu:
    """This machine's CPU (on Linux from /proc/cpuinfo; elsewhere only its name)."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    features = tuple(name for flag, name in FEATURES.items() if flag in flags)
    return Cpu(model=model, cores=cores or 1, features=features)
