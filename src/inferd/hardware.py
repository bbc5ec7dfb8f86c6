"""What this machine is: its CPU, and the instruction-set features that decide how fast a
quantized or reduced-precision model runs on it (and which it lacks); its NVIDIA GPUs."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
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


_core_share = 0


def share_cores(threads: int) -> None:
    """Set how many threads this process's models may use when their model.yaml leaves
    `runtime.threads` at 0: `inferd serve --workers N` gives each worker process its share
    of the cores, so N workers' runtimes do not oversubscribe them."""
    global _core_share
    _core_share = max(0, threads)


def core_share() -> int:
    """Threads a model may use by default in this process (0: the runtime chooses)."""
    return _core_share


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


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int | None
    driver: str


NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,name,memory.total,driver_version",
    "--format=csv,noheader,nounits",
]


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """nvidia-smi's CSV answer to NVIDIA_SMI_QUERY → the GPUs it lists."""
    found = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4 or not fields[0].isdigit():
            continue
        index, name, memory, driver = fields
        found.append(Gpu(int(index), name, int(memory) if memory.isdigit() else None, driver))
    return found


def gpus(timeout_s: float = 10.0) -> tuple[list[Gpu], str]:
    """NVIDIA GPUs as nvidia-smi reports them (no GPU library is imported), and a note on
    why none were found."""
    if shutil.which("nvidia-smi") is None:
        return [], "nvidia-smi is not on PATH (no NVIDIA driver installed)"
    try:
        done = subprocess.run(
            NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return [], f"nvidia-smi failed: {error}"
    if done.returncode != 0:
        return [], f"nvidia-smi failed: {(done.stderr or done.stdout).strip()}"
    found = parse_nvidia_smi(done.stdout)
    return found, "" if found else "nvidia-smi lists no GPU"
