"""The configurations `inferd tune` measures: variant x device x threads x max batch size x
batching delay (x cascade threshold), each one a model folder of its own in a temporary
repository, so that one server holds them all and they are measured one at a time."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from inferd.errors import SpecError


@dataclass(frozen=True)
class Config:
    """One way to serve the model."""

    version: int
    device: str
    threads: int
    max_batch_size: int
    max_delay_ms: float
    threshold: float | None = None
    """A cascade's confidence threshold (None: not a cascade)."""

    @property
    def label(self) -> str:
        """Short, for a chart: v1 cpu t2 b8 d0.5."""
        text = (
            f"v{self.version} {self.device} t{self.threads} b{self.max_batch_size} "
            f"d{self.max_delay_ms:g}"
        )
        return text if self.threshold is None else f"{text} c{self.threshold:g}"

    def folder(self, model: str) -> str:
        """Its model (and folder) name in the temporary repository: URL- and file-safe."""
        device = self.device.replace(":", "")
        delay_us = round(self.max_delay_ms * 1000)
        name = (
            f"{model}--v{self.version}-{device}-t{self.threads}-b{self.max_batch_size}"
            f"-d{delay_us}us"
        )
        if self.threshold is not None:
            name += f"-c{round(self.threshold * 1000)}"
        return name


def devices() -> list[str]:
    """The devices an ONNX model can run on here: cpu, and cuda when ONNX Runtime has it."""
    import onnxruntime

    found = ["cpu"]
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        found.append("cuda")
    return found


def default_delays(p99_ms: float) -> list[float]:
    """Batching delays worth trying under a p99 bound: none, a tenth and a quarter of it
    (a batch that waits longer than that leaves no time to run)."""
    return sorted({0.0, round(p99_ms / 10, 3), round(p99_ms / 4, 3)})


def default_batches(current: int) -> list[int]:
    return sorted({1, 8, 32} | ({current} if current > 1 else set()))


def default_threads(cores: int) -> list[int]:
    return sorted({1, cores})


def build_space(
    versions: Sequence[int],
    devices: Sequence[str],
    threads: Sequence[int],
    batches: Sequence[int],
    delays: Sequence[float],
    thresholds: Sequence[float | None] = (None,),
) -> list[Config]:
    """Every combination, without duplicates that cannot differ: a max batch size of 1 (or
    0, no batching) never waits, so it is tried with delay 0 only."""
    for name, values in (
        ("versions", versions),
        ("devices", devices),
        ("threads", threads),
        ("max batch sizes", batches),
        ("batching delays", delays),
        ("thresholds", thresholds),
    ):
        if not values:
            raise SpecError(f"the search space has no {name}; give at least one")
    if any(t < 0 for t in threads) or any(b < 0 for b in batches) or any(d < 0 for d in delays):
        raise SpecError("threads, max batch sizes and delays cannot be negative")
    seen: dict[Config, None] = {}
    for version, device, thread, batch, delay, threshold in itertools.product(
        versions, devices, threads, batches, delays, thresholds
    ):
        config = Config(version, device, thread, batch, delay if batch > 1 else 0.0, threshold)
        seen.setdefault(config, None)
    return list(seen)
