"""Prometheus metrics: request counts, per-stage latency, batch sizes, queue depth, and for
generation models time to first token, inter-token latency, tokens, sequences and KV cache.

Each server gets its own registry, so several servers (or tests) in one process don't
collide. Queue depth is read from the batchers when scraped, so it costs nothing per request.
The series written on every request, batch or token are kept as plain numbers and turned
into samples when scraped: prometheus_client's Counter and Histogram run a few Python calls
and locks per update, and a request made six of them on the event loop.
"""

from __future__ import annotations

import itertools
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from inferd.generate.engine import EngineStats
    from inferd.monitor.costs import Charge

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
SeriesT = TypeVar("SeriesT")
FamilyT = TypeVar("FamilyT", bound=Collector)


class Series:
    """One labelled histogram series: a count per bucket (the last is +Inf) and their sum."""

    __slots__ = ("_bounds", "_lock", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...], lock: threading.Lock) -> None:
        self._bounds = bounds
        self._lock = lock
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        with self._lock:
            self.add(value)

    def add(self, value: float) -> None:
        """Observe without taking the lock (the caller holds it)."""
        self.counts[bisect_left(self._bounds, value)] += 1  # the first bucket with value <= le
        self.sum += value


class Count:
    """One labelled counter series."""

    __slots__ = ("_lock", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount


class _Family(Collector, Generic[SeriesT]):
    """A labelled metric whose series are plain numbers under one lock, exposed exactly as
    prometheus_client exposes its own Counter or Histogram."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.lock = threading.Lock()
        """Held while a series changes; one per family, so a caller can update several."""
        self._series: dict[tuple[str, ...], SeriesT] = {}

    def labels(self, *values: str) -> SeriesT:
        with self.lock:
            series = self._series.get(values)
            if series is None:
                series = self._series[values] = self._new()
            return series

    def _new(self) -> SeriesT:
        raise NotImplementedError

    def _family(self) -> Metric:
        raise NotImplementedError

    def describe(self) -> Iterable[Metric]:
        yield self._family()


class _Histogram(_Family[Series]):
    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self._bounds = tuple(float(b) for b in buckets)
        les = [floatToGoString(b) for b in self._bounds]  # type: ignore[no-untyped-call]
        self._les = [*les, "+Inf"]

    def _new(self) -> Series:
        return Series(self._bounds, self.lock)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        with self.lock:
            taken = [(labels, list(s.counts), s.sum) for labels, s in self._series.items()]
        for labels, counts, total in taken:
            cumulative = itertools.accumulate(map(float, counts))
            family.add_metric(list(labels), list(zip(self._les, cumulative, strict=True)), total)
        yield family


class _Counter(_Family[Count]):
    def _new(self) -> Count:
        return Count(self.lock)

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        with self.lock:
            taken = [(labels, count.value) for labels, count in self._series.items()]
        for labels, value in taken:
            family.add_metric(list(labels), value)
        yield family


class Spent:
    """What one model version's predictions have cost so far (the four-costs counters)."""

    __slots__ = ("co2e_g", "cost", "cpu_s", "gpu_s", "joules", "predictions")

    def __init__(self) -> None:
        self.predictions = 0
        self.cpu_s = 0.0
        self.gpu_s = 0.0
        self.joules: dict[str, float] = {}  # by method
        self.cost: float | None = None
        self.co2e_g: float | None = None


class _CostCollector(Collector):
    """CPU and GPU seconds, joules (by method), money and CO2e per model version, kept as
    plain numbers under one lock and exposed as counters when scraped."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.lock = threading.Lock()
        self.spent: dict[tuple[str, str], Spent] = {}

    def add(self, model: str, version: str, cpu_s: float, gpu_s: float, charge: Charge) -> None:
        key = (model, version)
        with self.lock:
            spent = self.spent.get(key)
            if spent is None:
                spent = self.spent[key] = Spent()
            spent.predictions += 1
            spent.cpu_s += cpu_s
            spent.gpu_s += gpu_s
            joules = spent.joules
            joules[charge.cpu_method] = joules.get(charge.cpu_method, 0.0) + charge.cpu_joules
            if charge.gpu_method is not None:
                joules[charge.gpu_method] = joules.get(charge.gpu_method, 0.0) + charge.gpu_joules
            if charge.cost is not None:
                spent.cost = (spent.cost or 0.0) + charge.cost
            if charge.co2e_g is not None:
                spent.co2e_g = (spent.co2e_g or 0.0) + charge.co2e_g

    def collect(self) -> Iterable[Metric]:
        labels = ["model", "version"]
        cpu = CounterMetricFamily(
            "inferd_cpu_seconds",
            "CPU seconds the predictions used (their batches' shares)",
            labels=labels,
        )
        gpu = CounterMetricFamily(
            "inferd_gpu_seconds", "GPU seconds the predictions used", labels=labels
        )
        energy = CounterMetricFamily(
            "inferd_energy_joules",
            "Joules the predictions used, by how they were found: rapl, nvml or estimate",
            labels=[*labels, "method"],
        )
        cost = CounterMetricFamily(
            "inferd_cost",
            "What the predictions cost, in the server's currency",
            labels=[*labels, "currency"],
        )
        co2 = CounterMetricFamily(
            "inferd_co2e_grams", "Grams of CO2e the predictions' energy emitted", labels=labels
        )
        with self.lock:
            taken = [
                (key, s.cpu_s, s.gpu_s, dict(s.joules), s.cost, s.co2e_g)
                for key, s in self.spent.items()
            ]
        for (model, version), cpu_s, gpu_s, joules, spent, grams in taken:
            cpu.add_metric([model, version], cpu_s)
            gpu.add_metric([model, version], gpu_s)
            for method, value in joules.items():
                energy.add_metric([model, version, method], value)
            if spent is not None:
                cost.add_metric([model, version, self.currency], spent)
            if grams is not None:
                co2.add_metric([model, version], grams)
        yield from (cpu, gpu, energy, cost, co2)


SLO_WINDOW_S = 300
"""Seconds of requests `inferd_slo_attainment` is computed over."""


class _SloCollector(Collector):
    """Requests within and beyond each model's latency objective: counters per version, and
    the share within over the last SLO_WINDOW_S seconds (per-second buckets, so a request
    costs two additions under one lock)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.lock = threading.Lock()
        self.objectives: dict[str, float] = {}
        self.counts: dict[tuple[str, str, bool], int] = {}
        self.recent: dict[str, dict[int, list[int]]] = {}  # model -> second -> [met, total]
        self._clock = clock

    def add(self, model: str, version: str, objective_s: float, seconds: float) -> None:
        met = seconds <= objective_s
        second = int(self._clock())
        with self.lock:
            self.objectives[model] = objective_s
            key = (model, version, met)
            self.counts[key] = self.counts.get(key, 0) + 1
            buckets = self.recent.setdefault(model, {})
            bucket = buckets.get(second)
            if bucket is None:
                bucket = buckets[second] = [0, 0]
                for old in [s for s in buckets if s <= second - SLO_WINDOW_S]:
                    del buckets[old]
            bucket[0] += met
            bucket[1] += 1

    def collect(self) -> Iterable[Metric]:
        objective = GaugeMetricFamily(
            "inferd_slo_objective_seconds",
            "Each model's latency objective (model.yaml slo.p99_ms)",
            labels=["model"],
        )
        requests = CounterMetricFamily(
            "inferd_slo_requests",
            "Requests answered within (met=true) or beyond the model's latency objective",
            labels=["model", "version", "met"],
        )
        attainment = GaugeMetricFamily(
            "inferd_slo_attainment",
            f"Share of the last {SLO_WINDOW_S} s of requests answered within the objective",
            labels=["model"],
        )
        window = GaugeMetricFamily(
            "inferd_slo_window_requests",
            f"Requests in the last {SLO_WINDOW_S} s: what inferd_slo_attainment is a share of",
            labels=["model"],
        )
        since = int(self._clock()) - SLO_WINDOW_S
        with self.lock:
            for model, seconds in self.objectives.items():
                objective.add_metric([model], seconds)
            for (model, version, met), count in self.counts.items():
                requests.add_metric([model, version, "true" if met else "false"], count)
            for model, buckets in self.recent.items():
                within = sum(b[0] for s, b in buckets.items() if s > since)
                total = sum(b[1] for s, b in buckets.items() if s > since)
                if total:
                    attainment.add_metric([model], within / total)
                    window.add_metric([model], total)
        yield from (objective, requests, attainment, window)


class _QualityCollector(Collector):
    """The monitor loop's latest figures per model version (`watch.py`): the task metric and
    its labels, fairness differences per sensitive attribute, drift per input feature."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest: dict[tuple[str, str], dict[str, Any]] = {}

    def set(self, model: str, version: str, report: dict[str, Any]) -> None:
        with self.lock:
            self.latest[(model, version)] = report

    def collect(self) -> Iterable[Metric]:
        labels = ["model", "version"]
        quality = GaugeMetricFamily(
            "inferd_quality",
            "The task metric live, from feedback labels (unset below monitoring.min_labels)",
            labels=[*labels, "metric"],
        )
        counted = GaugeMetricFamily(
            "inferd_quality_labels", "Labelled predictions in the monitoring window", labels=labels
        )
        fairness = GaugeMetricFamily(
            "inferd_fairness_difference",
            "Demographic parity and equalized odds differences between a sensitive "
            "attribute's groups",
            labels=[*labels, "attribute", "measure"],
        )
        drift = GaugeMetricFamily(
            "inferd_drift",
            "Input drift against the version's reference profile: PSI, KS statistic",
            labels=[*labels, "feature", "test"],
        )
        with self.lock:
            taken = list(self.latest.items())
        for (model, version), report in taken:
            live = report["accuracy"]
            counted.add_metric([model, version], live["n"])
            if live["status"] == "ok":
                quality.add_metric([model, version, live["metric"]], live["value"])
                if live.get("f1") is not None:
                    quality.add_metric([model, version, "f1"], live["f1"])
            for attribute, result in (
                (report.get("fairness") or {}).get("attributes") or {}
            ).items():
                for measure in ("demographic_parity_difference", "equalized_odds_difference"):
                    figure = result.get(measure)
                    if figure is not None:
                        fairness.add_metric([model, version, attribute, measure], figure["value"])
            for feature, result in report["drift"]["features"].items():
                for test in ("psi", "ks"):
                    if result.get(test) is not None:
                        drift.add_metric([model, version, feature, test], result[test])
        yield from (quality, counted, fairness, drift)


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


EngineReader = Callable[[], Iterable[tuple[str, "EngineStats"]]]
"""Yields (model, engine stats) for every served generation model."""


class _EngineCollector(Collector):
    def __init__(self, read: EngineReader) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        sequences = GaugeMetricFamily(
            "inferd_generation_sequences",
            "Generation requests running (in a decode batch) or waiting for a cache slot",
            labels=["model", "state"],
        )
        cache = GaugeMetricFamily(
            "inferd_kv_cache_tokens",
            "KV-cache tokens: held by running sequences, reserved for them, and the capacity",
            labels=["model", "kind"],
        )
        for model, stats in self._read():
            sequences.add_metric([model, "running"], stats.running)
            sequences.add_metric([model, "waiting"], stats.waiting)
            cache.add_metric([model, "used"], stats.cache_tokens_used)
            cache.add_metric([model, "reserved"], stats.cache_tokens_reserved)
            cache.add_metric([model, "capacity"], stats.cache_tokens_capacity)
        yield sequences
        yield cache


ActionReader = Callable[[], dict[tuple[str, str], int]]
"""(model, state) → number of actions in the outbox in that state."""


class _ActionCollector(Collector):
    """Outbox contents read from the store at scrape time (so they survive restarts)."""

    def __init__(self, read: ActionReader) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        actions = GaugeMetricFamily(
            "inferd_actions_in_outbox",
            "Actions in the store's outbox by state (pending: not yet delivered)",
            labels=["model", "state"],
        )
        for (model, state), count in sorted(self._read().items()):
            actions.add_metric([model, state], count)
        yield actions


class Metrics:
    """The server's metrics; DataPlane records into it, /metrics renders it."""

    def __init__(
        self,
        queues: QueueReader,
        known_models: Callable[[str], bool],
        engines: EngineReader = lambda: (),
        actions: ActionReader | None = None,
        currency: str = "USD",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = CollectorRegistry()
        self.costs = _CostCollector(currency)
        self.registry.register(self.costs)
        self.slo = _SloCollector(clock)
        self.registry.register(self.slo)
        self.quality = _QualityCollector()
        self.registry.register(self.quality)
        self.requests = self._register(
            _Counter(
                "inferd_requests",
                "Requests handled, by model, protocol and HTTP status",
                ["model", "protocol", "status"],
            )
        )
        self.stage_seconds = self._register(
            _Histogram(
                "inferd_stage_seconds",
                "Seconds spent per item in each stage (total: per request)",
                ["model", "stage"],
                _LATENCY_BUCKETS,
            )
        )
        self.batch_size = self._register(
            _Histogram(
                "inferd_batch_size", "Items per model batch", ["model", "version"], _BATCH_BUCKETS
            )
        )
        self.time_to_first_token = self._register(
            _Histogram(
                "inferd_time_to_first_token_seconds",
                "Seconds from a generation request's arrival to its first token",
                ["model"],
                _LATENCY_BUCKETS,
            )
        )
        self.inter_token = self._register(
            _Histogram(
                "inferd_inter_token_seconds",
                "Seconds between consecutive tokens of one generation request",
                ["model"],
                _LATENCY_BUCKETS,
            )
        )
        self.generated_tokens = self._register(
            _Counter(
                "inferd_generated_tokens",
                "Tokens generated (rate() of it is tokens per second)",
                ["model"],
            )
        )
        self.cascade_items = self._register(
            _Counter(
                "inferd_cascade_items",
                "Items a cascade model answered, by the member that answered them: first, "
                "or then (sent on because the first was unsure)",
                ["model", "member"],
            )
        )
        self.decisions = Counter(
            "inferd_decisions",
            "Decisions made by the models' decide rules",
            ["model", "decision"],
            registry=self.registry,
        )
        self.action_outcomes = Counter(
            "inferd_actions",
            "Action delivery attempts by outcome: delivered, retry (will be tried again), "
            "failed (given up; see `inferd actions --state failed`)",
            ["model", "kind", "outcome"],
            registry=self.registry,
        )
        self.registry.register(_QueueCollector(queues))
        if actions is not None:
            self.registry.register(_ActionCollector(actions))
        self.registry.register(_EngineCollector(engines))
        self._stage_children: dict[tuple[str, str], Series] = {}
        self._item_children: dict[str, tuple[Series, Series, Series, Series]] = {}
        self._request_children: dict[tuple[str, str, int], Count] = {}
        self._known_models = known_models

    def _register(self, family: FamilyT) -> FamilyT:
        self.registry.register(family)
        return family

    def stage(self, model: str, stage: str) -> Series:
        """The histogram series for one model and stage, cached (labels() is not free)."""
        key = (model, stage)
        child = self._stage_children.get(key)
        if child is None:
            child = self._stage_children[key] = self.stage_seconds.labels(model, stage)
        return child

    def observe_item(
        self, model: str, queue_s: float, preprocess_s: float, model_s: float, postprocess_s: float
    ) -> None:
        """One item's queue, preprocess, model and postprocess seconds, under one lock."""
        children = self._item_children.get(model)
        if children is None:
            queue, pre, run, post = (self.stage(model, s) for s in STAGES[:4])
            children = self._item_children[model] = (queue, pre, run, post)
        queue, pre, run, post = children
        with self.stage_seconds.lock:
            queue.add(queue_s)
            pre.add(preprocess_s)
            run.add(model_s)
            post.add(postprocess_s)

    def within_objective(
        self, model: str, version: str, objective_s: float, seconds: float
    ) -> None:
        """One request's latency against its model's objective (model.yaml `slo`)."""
        self.slo.add(model, version, objective_s, seconds)

    def charge(self, model: str, version: str, cpu_s: float, gpu_s: float, charge: Charge) -> None:
        """One prediction's CPU and GPU time and what they cost."""
        self.costs.add(model, version, cpu_s, gpu_s, charge)

    def generation_observer(self, model: str) -> Callable[[list[tuple[bool, float]]], None]:
        """The engine's per-step hook for one model: token timings into the histograms."""
        first = self.time_to_first_token.labels(model)
        between = self.inter_token.labels(model)
        tokens = self.generated_tokens.labels(model)

        def observe(timings: list[tuple[bool, float]]) -> None:
            for is_first, seconds in timings:
                (first if is_first else between).observe(seconds)
            tokens.inc(len(timings))

        return observe

    def cascade_item(self, model: str, member: str) -> None:
        self.cascade_items.labels(model, member).inc()

    def decision(self, model: str, decision: str) -> None:
        self.decisions.labels(model, decision).inc()

    def action_outcome(self, model: str, kind: str, outcome: str) -> None:
        self.action_outcomes.labels(model, kind, outcome).inc()

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
