"""Where a cascade model (model.yaml `cascade: {first, then, when}`) plugs into tune: its
configurations are thresholds of `when`, each with the accuracy and the share of items sent on
that the eval set gives it (`inferd.optimize.cascade`: each member runs once over it). Every
threshold is scored; only a few are worth measuring under load (`candidates`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inferd.errors import SpecError
from inferd.optimize.cascade import CascadePoint, cascade_thresholds, cheapest
from inferd.repository import CascadeVersion, ModelEntry
from inferd.spec import ModelSpec

MEASURED = 6
"""At most this many thresholds are measured under load."""


@dataclass(frozen=True)
class Curve:
    """Every threshold of a cascade on its eval set."""

    points: list[CascadePoint]

    @property
    def source(self) -> float:
        """The metric of sending every item on: the `then` model's own (what a cascade is
        measured against)."""
        return max(self.points, key=lambda p: p.share_sent).metric


def is_cascade(spec: ModelSpec) -> bool:
    return spec.cascade is not None


def curve(entry: ModelEntry) -> Curve:
    """The cascade's thresholds scored on its eval set; its members' runtimes freed after."""
    if entry.spec is None or entry.spec.cascade is None:
        raise SpecError(f"model {entry.name!r} is not a cascade")
    try:
        return Curve(cascade_thresholds(entry))
    finally:
        model = entry.latest
        if isinstance(model, CascadeVersion):
            model.first.close()
            model.then.close()


def front(points: Sequence[CascadePoint]) -> list[CascadePoint]:
    """The Pareto-distinct points: each strictly more accurate than every point sending fewer
    items on (a threshold sending more on for no more accuracy is only slower)."""
    kept: list[CascadePoint] = []
    for point in sorted(points, key=lambda p: (p.share_sent, -p.metric)):
        if not kept or point.metric > kept[-1].metric:
            kept.append(point)
    return kept


def candidates(
    points: Sequence[CascadePoint], limit: float | None, count: int = MEASURED
) -> list[CascadePoint]:
    """The thresholds to measure under load: the Pareto-distinct points thinned, evenly over
    the share sent on, to at most `count`, always with the cheapest (sending fewest on), the
    most accurate and, under a metric bound, the cheapest meeting it."""
    if count < 2:
        raise SpecError(f"measure at least 2 cascade thresholds, not {count}")
    curve = front(points)
    if not curve:
        raise SpecError("the cascade's eval set gave no thresholds to try")
    must = {curve[0].threshold, curve[-1].threshold}
    if limit is not None:
        meeting = cheapest(curve, limit)
        if meeting is not None:
            must.add(meeting.threshold)
    room = max(count - len(must), 0)
    rest = [p for p in curve if p.threshold not in must]
    if len(rest) > room:
        step = len(rest) / room if room else 0.0
        rest = [rest[int(i * step + step / 2)] for i in range(room)]
    chosen = {p.threshold for p in rest} | must
    return [p for p in curve if p.threshold in chosen]
