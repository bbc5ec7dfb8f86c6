"""The bounds a configuration must meet, the Pareto front, and the choice.

A configuration is kept when it holds both bounds: p99 within the latency bound at some
load, and the task metric within the metric bound (an absolute floor, or a largest drop from
the best source version). Of those, the fastest is chosen: the highest sustained rate, among
the most thoroughly measured (a short screening measurement never beats a long one). A
slower or less accurate configuration is shown in the report and never chosen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from inferd.errors import SpecError
from inferd.optimize.tuning.search import Measurement, speed_key
from inferd.optimize.tuning.space import Config

LOWER_IS_BETTER = ("mae", "rmse", "mase")


@dataclass(frozen=True)
class Bounds:
    p99_ms: float
    min_metric: float | None = None
    """The metric must reach this (at most this for error metrics)."""
    max_drop: float | None = None
    """The metric may be at most this much worse than the best source version's."""

    def __post_init__(self) -> None:
        if not (self.p99_ms > 0 and math.isfinite(self.p99_ms)):
            raise SpecError(
                f"--p99-ms must be a positive number of milliseconds, not {self.p99_ms}"
            )
        if self.min_metric is not None and self.max_drop is not None:
            raise SpecError("give --min-metric or --max-drop, not both")
        if self.max_drop is not None and not self.max_drop >= 0:
            raise SpecError(f"--max-drop must be 0 or more, not {self.max_drop}")

    def limit(self, metric: str, best_source: float) -> float | None:
        """The worst metric value allowed (None: no metric bound)."""
        if self.min_metric is not None:
            return self.min_metric
        if self.max_drop is not None:
            sign = 1 if metric in LOWER_IS_BETTER else -1
            return best_source + sign * self.max_drop
        return None


def metric_ok(metric: str, value: float, limit: float | None) -> bool:
    if limit is None:
        return not math.isnan(value)
    return value <= limit if metric in LOWER_IS_BETTER else value >= limit


def better_metric(metric: str, value: float) -> float:
    """The metric as a number where more is better (for sorting and the Pareto front)."""
    return -value if metric in LOWER_IS_BETTER else value


@dataclass(frozen=True)
class Row:
    """One configuration as the report shows it."""

    config: Config
    metric_value: float
    measurement: Measurement
    rung: int
    meets_metric: bool
    pareto: bool = False
    chosen: bool = False
    share_sent: float | None = None
    """A cascade's share of items sent on to its second model (None: not a cascade)."""

    @property
    def meets_latency(self) -> bool:
        return self.measurement.meets

    @property
    def feasible(self) -> bool:
        return self.meets_metric and self.meets_latency


def pareto_front(rows: Sequence[Row], metric: str) -> set[Config]:
    """Configurations no other beats on both throughput and metric (that hold the p99 bound
    at some load): the curve the choice is made on."""
    holding = [r for r in rows if r.measurement.rate is not None]
    front = set()
    for row in holding:
        rate, value = row.measurement.rate or 0.0, better_metric(metric, row.metric_value)
        dominated = any(
            (other.measurement.rate or 0.0) >= rate
            and better_metric(metric, other.metric_value) >= value
            and (
                (other.measurement.rate or 0.0) > rate
                or better_metric(metric, other.metric_value) > value
            )
            for other in holding
        )
        if not dominated:
            front.add(row.config)
    return front


def choose(rows: Sequence[Row], metric: str) -> Row | None:
    """The fastest configuration meeting both bounds, among those measured longest; ties go
    to the better metric, then fewer threads, then the shorter batching delay."""
    feasible = [r for r in rows if r.feasible]
    if not feasible:
        return None
    deepest = max(r.rung for r in feasible)
    return max(
        (r for r in feasible if r.rung == deepest),
        key=lambda r: (
            speed_key(r.measurement),
            better_metric(metric, r.metric_value),
            -(r.config.threads or 0),
            -(r.config.max_delay_ms or 0.0),
        ),
    )


def closest(rows: Sequence[Row], bounds: Bounds, count: int = 3) -> list[Row]:
    """When nothing meets both bounds: the configurations that came nearest (metric bound
    met first, then the lowest p99 measured against the bound)."""

    def distance(row: Row) -> tuple[bool, float, float]:
        p99 = row.measurement.p99_ms if row.measurement.p99_ms is not None else math.inf
        return (not row.meets_metric, not row.meets_latency, p99 / bounds.p99_ms)

    return sorted(rows, key=distance)[:count]
