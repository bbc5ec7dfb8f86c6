"""Measuring versions side by side: the task metric on the eval data, and the model's speed
on a batch of its own eval inputs, interleaved so that a noisy machine slows all alike.

Every figure `inferd optimize` records or prints comes from here, measured in that run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inferd.backends import Backend, load_backend
from inferd.errors import SpecError
from inferd.hardware import cpu
from inferd.optimize.evaluate import EvalReport, evaluate, load_examples
from inferd.pipeline import Pipeline
from inferd.repository import ModelEntry, ModelVersion
from inferd.spec import ModelSpec, load_labels

Feed = dict[str, np.ndarray]


@dataclass(frozen=True)
class Speed:
    """How fast one model ran a batch: the median of many timed calls."""

    batch: int
    ms_per_batch: float

    @property
    def items_per_s(self) -> float:
        return self.batch * 1000.0 / self.ms_per_batch


def staged_version(entry: ModelEntry, folder: Path, number: int) -> ModelVersion:
    """A version folder (perhaps still being written) loaded as `number` of the model."""
    spec = entry.spec
    if spec is None:
        raise SpecError(f"model {entry.name!r} has no model.yaml")
    backend = load_backend(spec, folder, False)
    labels = load_labels(spec, entry.path)
    pipeline = Pipeline(spec, backend, labels, entry.path, False, number)
    return ModelVersion(entry.name, number, spec, pipeline)


def with_version(entry: ModelEntry, model: ModelVersion) -> ModelEntry:
    """The entry with one more loaded version (for evaluating a version being written)."""
    return ModelEntry(
        entry.name, entry.path, entry.spec, {**entry.versions, model.version: model}, entry.errors
    )


def score(entry: ModelEntry, version: int) -> EvalReport:
    """The version's task metric on the model's eval data (model.yaml `eval:`)."""
    return evaluate(entry, version=version)


def eval_instances(entry: ModelEntry) -> list[Any]:
    spec = entry.spec
    if spec is None or spec.eval is None:
        raise SpecError(
            f"model {entry.name!r} has no eval: section in its model.yaml; optimizing needs "
            "labelled held-out data to measure what a variant costs in accuracy"
        )
    return [instance for instance, _ in load_examples(entry.path / spec.eval.data)]


def batch_feed(pipeline: Pipeline, instances: Sequence[Any], batch: int) -> Feed:
    """The model inputs of `batch` eval instances, stacked as the batcher would (cycled when
    there are fewer; the first group when they do not all stack)."""
    if not instances:
        raise SpecError("the eval data is empty; it is what speed is measured on")
    chosen = [instances[i % len(instances)] for i in range(batch)]
    return pipeline.feeds(chosen)[0]


def time_side_by_side(
    backends: Mapping[str, Backend], feeds: Mapping[str, Feed], seconds: float = 3.0
) -> dict[str, Speed]:
    """Each backend on its feed, in alternating short rounds for about `seconds` in all, after
    a warm-up; the median call per backend."""
    for name, backend in backends.items():
        for _ in range(3):
            backend.run(feeds[name])
    samples: dict[str, list[float]] = {name: [] for name in backends}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or min(len(s) for s in samples.values()) < 5:
        for name, backend in backends.items():
            for _ in range(3):
                started = time.perf_counter()
                backend.run(feeds[name])
                samples[name].append(time.perf_counter() - started)
    batch = {name: len(next(iter(feed.values()))) for name, feed in feeds.items()}
    return {
        name: Speed(batch[name], statistics.median(times) * 1000.0)
        for name, times in samples.items()
    }


@dataclass(frozen=True)
class Comparison:
    """A variant against its source, measured in one run on this machine."""

    metric: str
    value: float
    source_value: float
    speed: Speed
    source_speed: Speed
    cpu: str

    @property
    def speedup(self) -> float:
        return self.speed.items_per_s / self.source_speed.items_per_s

    @property
    def drop(self) -> float:
        """How much worse the metric got (negative: better), in the metric's units."""
        lower_is_better = self.metric in ("mae", "rmse", "mase")
        return (self.value - self.source_value) * (1 if lower_is_better else -1)

    def record(self) -> dict[str, Any]:
        """For model.yaml's `variants:` record."""
        return {
            "metric": self.metric,
            "value": self.value,
            "source_value": self.source_value,
            "batch": self.speed.batch,
            "ms_per_batch": self.speed.ms_per_batch,
            "source_ms_per_batch": self.source_speed.ms_per_batch,
            "speedup": self.speedup,
            "cpu": self.cpu,
        }


def compare(
    entry: ModelEntry,
    source: ModelVersion,
    variant: ModelVersion,
    batch: int = 8,
    seconds: float = 3.0,
) -> Comparison:
    """The variant and its source: metric on the eval data, speed at `batch`, side by side."""
    both = with_version(with_version(entry, source), variant)
    source_report = score(both, source.version)
    report = score(both, variant.version)
    instances = eval_instances(entry)
    feed = batch_feed(source.predictive, instances, batch)
    variant_feed = batch_feed(variant.predictive, instances, batch)
    speeds = time_side_by_side(
        {"source": source.predictive.backend, "variant": variant.predictive.backend},
        {"source": feed, "variant": variant_feed},
        seconds,
    )
    return Comparison(
        metric=report.metric,
        value=report.value,
        source_value=source_report.value,
        speed=speeds["variant"],
        source_speed=speeds["source"],
        cpu=cpu().describe(),
    )


def spec_of(entry: ModelEntry) -> ModelSpec:
    if entry.spec is None:
        raise SpecError(f"model {entry.name!r} has no model.yaml")
    return entry.spec
