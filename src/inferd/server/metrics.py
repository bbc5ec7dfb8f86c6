"""Prometheus metrics: request counts, per-stage latency, batch sizes and queue depth.

Each server gets its own registry, so several servers (or tests) in one process don't
collide. Queue depth is read from the batchers when scraped, so it costs nothing per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the output and nobody reads them

STAGES = ("queue", "preprocess", "model", "postprocess", "total")
_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

QueueReader = Callable[[], Iterable[tuple[str, str, int, int]]]
"""Yields (model, version, items waiting, batches running) for every served version."""


class _QueueCollector(Collector):
    def __init__(self, read: QueueReader) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "inferd_queue_depth", "Items waiting for a batch", labels=["model", "version"]
        )
        running = GaugeMetricFamily(
            "inferd_batches_running", "Batches running now", labels=["model", "version"]
        )
        for model, version, waiting, batches in self._read():
            depth.add_metric([model, version], waiting)
            running.add_metric([model, version], batches)
        yield depth
        yield running


class Metrics:
    """The server's metrics; DataPlane records into it, /metrics renders it."""

    def __init__(self, queues: QueueReader, known_models: Callable[[str], bool]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "inferd_requests",
            "Requests handled, by model, protocol and HTTP status",
            ["model", "protocol", "status"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "inferd_stage_seconds",
            "Seconds spent per item in each stage (total: per request)",
            ["model", "stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "inferd_batch_size",
            "Items per model batch",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_QueueCollector(queues))
        self._stage_children: dict[tuple[str, str], Histogram] = {}
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._known_models = known_models

    def stage(self, model: str, stage: str) -> Histogram:
        """The histogram child for one model and stage, cached (labels() is not free)."""
        key = (model, stage)
        child = self._stage_children.get(key)
        if child is None:
            child = self._stage_children[key] = self.stage_seconds.labels(model, stage)
        return child

    def observe_batch(self, model: str, version: str, size: int) -> None:
        self.batch_size.labels(model, version).observe(size)

    def count(self, model: str, protocol: str, status: int) -> None:
        """Count a request; names of models the server lacks share one label, "-"."""
        key = (model, protocol, status)
        child = self._request_children.get(key)
        if child is None:
            label = model if self._known_models(model) else "-"
            child = self.requests.labels(label, protocol, str(status))
            if label != "-":
                self._request_children[key] = child
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
