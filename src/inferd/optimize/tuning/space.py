"""The configurations `inferd tune` measures: variant x device x threads x max batch size x
batching delay, each one a model folder of its own in a temporary repository, so that one
server holds them all and they are measured one at a time. A cascade has none of those of its
own (its members serve it as their model.yaml says): its configurations are its thresholds.

What a configuration means in model.yaml is `Config.settings`, merged by `merge`: the staged
folders and `--apply` write a configuration the same way."""

from __future__ import annotations

import itertools
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from inferd.errors import SpecError
from inferd.optimize.cascade import when_below


@dataclass(frozen=True)
class Config:
    """One way to serve the model: a version with its device, threads and batching, or (a
    cascade, `Config.cascade`) a threshold alone."""

    version: int | None
    device: str | None
    threads: int | None
    max_batch_size: int | None
    max_delay_ms: float | None
    threshold: float | None = None
    """A cascade's confidence threshold (None: not a cascade)."""

    @classmethod
    def cascade(cls, threshold: float) -> Config:
        return cls(None, None, None, None, None, threshold)

    @property
    def label(self) -> str:
        """Short, for a chart: v1 cpu t2 b8 d0.5, or a cascade's c<0.85."""
        if self.threshold is not None:
            return f"c<{self.threshold:g}"
        return (
            f"v{self.version} {self.device} t{self.threads} b{self.max_batch_size} "
            f"d{self.max_delay_ms or 0:g}"
        )

    def folder(self, model: str) -> str:
        """Its model (and folder) name in the temporary repository: URL- and file-safe."""
        if self.threshold is not None:
            return f"{model}--c{round(self.threshold * 10000)}"
        device = (self.device or "").replace(":", "")
        delay_us = round((self.max_delay_ms or 0) * 1000)
        return (
            f"{model}--v{self.version}-{device}-t{self.threads}-b{self.max_batch_size}"
            f"-d{delay_us}us"
        )

    def settings(self) -> dict[str, Any]:
        """What the configuration sets in model.yaml (what it leaves out stays as written)."""
        if self.threshold is not None:
            return {"cascade": {"when": when_below(self.threshold)}}
        return {
            "versions": [self.version],
            "batching": {"max_batch_size": self.max_batch_size, "max_delay_ms": self.max_delay_ms},
            "runtime": {"threads": self.threads, "device": self.device},
        }


def merge(data: MutableMapping[str, Any], settings: dict[str, Any]) -> None:
    """`settings` written into model.yaml's data in place: sections merged key by key (a
    round-trip mapping keeps its comments), other values replaced."""
    for key, value in settings.items():
        section = data.get(key)
        if isinstance(value, dict) and isinstance(section, MutableMapping):
            merge(section, value)
        else:
            data[key] = value


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
) -> list[Config]:
    """Every combination, without duplicates that cannot differ: a max batch size of 1 (or
    0, no batching) never waits, so it is tried with delay 0 only."""
    for name, values in (
        ("versions", versions),
        ("devices", devices),
        ("threads", threads),
        ("max batch sizes", batches),
        ("batching delays", delays),
    ):
        if not values:
            raise SpecError(f"the search space has no {name}; give at least one")
    if any(t < 0 for t in threads) or any(b < 0 for b in batches) or any(d < 0 for d in delays):
        raise SpecError("threads, max batch sizes and delays cannot be negative")
    seen: dict[Config, None] = {}
    for version, device, thread, batch, delay in itertools.product(
        versions, devices, threads, batches, delays
    ):
        config = Config(version, device, thread, batch, delay if batch > 1 else 0.0)
        seen.setdefault(config, None)
    return list(seen)


def cascade_space(thresholds: Sequence[float]) -> list[Config]:
    """A cascade's configurations: one per threshold (its members keep their own settings)."""
    if not thresholds:
        raise SpecError("the search space has no cascade thresholds; give at least one")
    return [Config.cascade(t) for t in dict.fromkeys(thresholds)]
