"""Measuring configurations under load, and searching a space too big to measure whole.

A `Probe` (given by the CLI, which owns the load generator) measures one configuration: the
highest arrival rate whose p99 stays within the bound (or the p99 at a fixed rate or
concurrency). `successive_halving` spends a time budget: every configuration gets a short
measurement, the best third a longer one, and so on, so the long, trustworthy figures go to
the configurations that could win. When the whole space fits the budget at full length it
is measured whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from inferd.optimize.progress import SILENT, Steps
from inferd.optimize.tuning.space import Config

LoadKind = Literal["search", "rate", "concurrency"]
TRIAL_OVERHEAD_S = 0.3
"""Per load level: opening connections, starting the phase, summarizing."""


@dataclass(frozen=True)
class Load:
    """What load a configuration is measured under: `search` finds the highest Poisson
    arrival rate whose p99 holds the bound; `rate` sends a fixed Poisson rate; `concurrency`
    keeps a fixed number of requests in flight (closed loop)."""

    kind: LoadKind = "search"
    value: float | None = None

    def describe(self) -> str:
        if self.kind == "rate":
            return f"Poisson arrivals at {self.value:g} req/s"
        if self.kind == "concurrency":
            return f"{self.value:g} requests in flight (closed loop)"
        return "Poisson arrivals at the highest rate whose p99 holds the bound (searched)"


@dataclass(frozen=True)
class Effort:
    """How long one measurement runs: warm-up and measured seconds per load level, and the
    rate search's bisection steps."""

    warmup_s: float
    duration_s: float
    search_steps: int = 2

    def estimate_s(self, load: Load) -> float:
        level = self.warmup_s + self.duration_s + TRIAL_OVERHEAD_S
        if load.kind != "search":
            return level
        probe = min(self.warmup_s, 1.0) + min(self.duration_s, 2.0) + TRIAL_OVERHEAD_S
        return probe + (5 + self.search_steps) * level  # ~3 doublings, 1 failure, bisection

    @classmethod
    def for_seconds(cls, seconds: float, load: Load) -> Effort:
        """The longest effort whose estimate fits `seconds` (at least a minimal one)."""
        steps = 1 if seconds < 8 else 2 if seconds < 14 else 3
        levels = 1.0 if load.kind != "search" else 5 + steps + 1
        per_level = max(seconds / levels - TRIAL_OVERHEAD_S, 0.0)
        warmup = min(max(0.25 * per_level, 0.15), 0.5)
        duration = min(max(0.75 * per_level, 0.4), FULL.duration_s)
        return cls(round(warmup, 2), round(duration, 2), steps)

    def describe(self) -> str:
        return (
            f"{self.warmup_s:g} s warm-up + {self.duration_s:g} s per load level, "
            f"{self.search_steps} bisection steps"
        )


FULL = Effort(warmup_s=0.5, duration_s=2.0, search_steps=3)
"""The longest measurement tune makes of a configuration."""


@dataclass(frozen=True)
class Trial:
    """One measurement asked of a `Probe`."""

    url: str
    model: str
    """The configuration's model name on that server."""
    eval_data: Path
    """The source model folder: its eval instances are the requests."""
    p99_ms: float
    load: Load
    effort: Effort


@dataclass(frozen=True)
class Measurement:
    rate: float | None
    """Requests per second sustained with p99 within the bound (None: not at any load tried)."""
    p99_ms: float | None
    """At that rate; when none held the bound, the lowest measured (how close it came)."""
    throughput: float
    """Answered requests per second at that load."""
    error_rate: float = 0.0
    offered: float | None = None
    """The arrival rate scheduled at that load (None: closed loop)."""
    trials: int = 1
    seconds: float = 0.0
    """Wall time the measurement took."""

    @property
    def meets(self) -> bool:
        return self.rate is not None


Probe = Callable[[Trial], Measurement]


def speed_key(measurement: Measurement) -> tuple[float, float]:
    """Faster first: the sustained rate, then (for ties and for misses) the lower p99."""
    rate = measurement.rate if measurement.rate is not None else -1.0
    p99 = measurement.p99_ms if measurement.p99_ms is not None else math.inf
    return (rate, -p99)


@dataclass(frozen=True)
class Plan:
    """The rungs: how many configurations each measures, and how long."""

    rungs: tuple[tuple[int, Effort], ...]
    budget_s: float
    load: Load

    @property
    def adaptive(self) -> bool:
        return len(self.rungs) > 1

    def estimate_s(self) -> float:
        return sum(count * effort.estimate_s(self.load) for count, effort in self.rungs)

    def describe(self) -> str:
        over = ""
        if self.estimate_s() > 1.2 * self.budget_s:
            over = (
                f" (the shortest measurements take about {self.estimate_s():.0f} s, over the "
                f"{self.budget_s:g} s budget: give a smaller space or a bigger --budget-s)"
            )
        if not self.adaptive:
            count, effort = self.rungs[0]
            return f"measured whole: {count} configurations, each {effort.describe()}{over}"
        sizes = " → ".join(str(count) for count, _ in self.rungs)
        return self._halving(sizes) + over

    def _halving(self, sizes: str) -> str:
        return (
            f"searched adaptively by successive halving (the space does not fit the "
            f"{self.budget_s:g} s budget at full length): {sizes} configurations, each rung "
            "keeping the fastest third for a longer measurement"
        )


def plan(count: int, budget_s: float, load: Load, eta: int = 3) -> Plan:
    """Measure whole at full length when that fits the budget; otherwise successive halving
    with rungs of n, n/eta, n/eta², ... down to 2, each rung given an even share of what the
    earlier ones left."""
    if count * FULL.estimate_s(load) <= budget_s:
        return Plan(((count, FULL),), budget_s, load)
    sizes = [count]
    while sizes[-1] > 2:
        sizes.append(max(math.ceil(sizes[-1] / eta), 2))
    left = budget_s
    rungs = []
    for index, size in enumerate(sizes):
        share = max(left, 0.0) / (len(sizes) - index)
        effort = Effort.for_seconds(share / size, load)
        if effort.estimate_s(load) > FULL.estimate_s(load):
            effort = FULL
        rungs.append((size, effort))
        left -= size * effort.estimate_s(load)
    return Plan(tuple(rungs), budget_s, load)


@dataclass
class Measured:
    """A configuration's most thorough measurement, and the rung it came from (0 first)."""

    config: Config
    measurement: Measurement
    rung: int
    history: list[Measurement] = field(default_factory=list)


def successive_halving(
    configs: Sequence[Config],
    measure: Callable[[Config, Effort], Measurement],
    schedule: Plan,
    eligible: Callable[[Config], bool] = lambda config: True,
    steps: Steps = SILENT,
    before_rung: Callable[[Sequence[Config]], None] = lambda configs: None,
) -> dict[Config, Measured]:
    """Run the plan's rungs: all of `configs` in the first; each later rung measures the
    fastest of the previous rung's `eligible` configurations (those that can be chosen: a
    variant below the metric bound is measured once, to be shown, never promoted). Later
    rungs get the time earlier rungs left unspent."""
    results: dict[Config, Measured] = {}
    current = list(configs)
    spent = 0.0
    rungs = len(schedule.rungs)
    for index, (size, planned) in enumerate(schedule.rungs):
        if index > 0:
            ranked = sorted(
                (c for c in current if eligible(c) and results[c].measurement.meets),
                key=lambda c: speed_key(results[c].measurement),
                reverse=True,
            )
            current = ranked[:size]
            if not current:
                break
        effort = planned
        if index > 0 and schedule.adaptive:
            left = schedule.budget_s - spent
            later = sum(count for count, _ in schedule.rungs[index:])
            share = left / later if later else 0.0
            effort = max(planned, Effort.for_seconds(share, schedule.load), key=_length)
            if _length(effort) > _length(FULL):
                effort = FULL
        before_rung(current)
        title = f"rung {index + 1}/{rungs}: " if rungs > 1 else ""
        with steps.step(f"{title}{len(current)} configurations", total=len(current)) as advance:
            for config in current:
                measurement = measure(config, effort)
                spent += measurement.seconds
                previous = results.get(config)
                history = [*(previous.history if previous else []), measurement]
                results[config] = Measured(config, measurement, index, history)
                advance(1)
    return results


def _length(effort: Effort) -> float:
    return effort.warmup_s + effort.duration_s + effort.search_steps
