"""Several processes' metrics as one: what a scrape of `inferd serve --workers N` answers.

Each worker keeps its own metrics (cheap plain numbers, `metrics.py`); a scrape reaching any
worker gathers the others' expositions and adds them up here, as prometheus-client's
multiprocess mode would: counters and histograms are summed. A gauge is either a load that
adds up (items queued in each worker), a share weighted by the requests behind it (SLO
attainment), or one fact every worker reads alike (the outbox in the shared store, the
primary's monitor figures): that kind is taken once, as the largest value seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

SUMMED_GAUGES = frozenset(
    {
        "inferd_queue_depth",
        "inferd_batches_running",
        "inferd_generation_sequences",
        "inferd_kv_cache_tokens",
        "inferd_slo_window_requests",
    }
)
"""Gauges of each process's own load: the server's is their sum."""

WEIGHTED_GAUGES = {"inferd_slo_attainment": "inferd_slo_window_requests"}
"""Gauges that are a share, and the gauge (same labels) counting what each share is of."""

_Key = tuple[str, tuple[tuple[str, str], ...]]


def merge_expositions(texts: Sequence[bytes]) -> bytes:
    """The text exposition of several processes' metrics added up (see the module doc)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[_Key, list[float]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text.decode()):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            seen = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                seen.setdefault(key, []).append(sample.value)
    for name, family in families.items():
        family.samples = [
            Sample(
                sample, dict(labels), _combine(name, family.type, (sample, labels), found, values)
            )
            for (sample, labels), found in values[name].items()
        ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


def _combine(
    name: str,
    kind: str,
    key: _Key,
    found: list[float],
    values: dict[str, dict[_Key, list[float]]],
) -> float:
    if kind != "gauge" or name in SUMMED_GAUGES:
        return sum(found)
    weights_of = WEIGHTED_GAUGES.get(name)
    if weights_of is not None:
        weights = values.get(weights_of, {}).get((weights_of, key[1]))
        if weights is not None and len(weights) == len(found) and sum(weights) > 0:
            return sum(v * w for v, w in zip(found, weights, strict=True)) / sum(weights)
    return max(found)


class _Fixed(Collector):
    """Already-made metric families, to render with prometheus-client's own exposition."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families
