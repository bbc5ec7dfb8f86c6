"""Choosing a cascade's threshold: accuracy and the share of items sent on, for every
threshold at once, from one run of each member over the cascade's eval set.

A cascade (model.yaml `cascade:`) sends an item on when the first model's `confidence` is
below the threshold. Each member runs once over the eval data; sorted by the first model's
confidence, the items sent at any threshold are a prefix, so every candidate's accuracy is
a difference of two running sums: no member runs again per threshold. `inferd tune` measures
the speed of the points it keeps; `write_when` records the chosen one in model.yaml.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inferd.errors import InferdError, SpecError
from inferd.optimize.evaluate import load_examples
from inferd.optimize.variants import dumped, replace_text, round_trip
from inferd.repository import CascadeVersion, ModelEntry
from inferd.spec import load_spec
from inferd.stages import Prediction
from inferd.stages.decide import classifier_derived


@dataclass(frozen=True)
class CascadePoint:
    """One threshold: `confidence < threshold` sends an item on."""

    threshold: float
    metric: float
    """Accuracy of the cascade on the eval set (a failed item is a wrong one)."""
    share_sent: float
    """The share of items the first model sends on to the second."""

    @property
    def when(self) -> str:
        return when_below(self.threshold)


def when_below(threshold: float) -> str:
    """The cascade's `when` that sends an item on below `threshold` confidence."""
    return f"confidence < {threshold:g}"


@dataclass(frozen=True)
class MemberAnswers:
    """One member's answers on the eval set: each item's label (None: failed) and confidence."""

    labels: list[str | None]
    confidence: np.ndarray


def answers(entry: ModelEntry, instances: Sequence[Any]) -> MemberAnswers:
    """A member's served version run in process over the instances (stages 1-5)."""
    model = entry.latest
    if model is None:
        raise SpecError(f"model {entry.name!r} did not load: {'; '.join(entry.errors)}")
    if model.spec.task != "classification":
        raise SpecError(
            f"model {entry.name!r} is a {model.spec.task} model; cascade thresholds are on a "
            "classifier's confidence"
        )
    labels: list[str | None] = []
    confidence = []
    for outcome in model.predictive.predict_instances(list(instances)):
        if isinstance(outcome, InferdError):
            labels.append(None)
            confidence.append(-1.0)  # a failed first answer: always sent on
            continue
        labels.append(str(outcome.fields["label"]))
        confidence.append(_confidence(outcome))
    return MemberAnswers(labels, np.asarray(confidence, dtype=np.float64))


def _confidence(prediction: Prediction) -> float:
    """As the served cascade's `when` reads it."""
    return classifier_derived(prediction)["confidence"]


def thresholds(
    first: ModelEntry, then: ModelEntry, examples: Sequence[tuple[Any, Any]]
) -> list[CascadePoint]:
    """Every distinct cascade over the eval examples, from sending none on to sending all;
    thresholds are the shortest decimals that split the first model's confidences there."""
    if not examples:
        raise SpecError("the eval data has no examples to choose a cascade threshold on")
    instances = [instance for instance, _ in examples]
    targets = [str(target) for _, target in examples]
    return points(answers(first, instances), answers(then, instances), targets)


def points(first: MemberAnswers, then: MemberAnswers, targets: Sequence[str]) -> list[CascadePoint]:
    """The curve from both members' answers (see `thresholds`)."""
    n = len(targets)
    order = np.argsort(first.confidence, kind="stable")
    confidence = first.confidence[order]
    right_first = np.array([first.labels[i] == targets[i] for i in order], dtype=np.int64)
    right_then = np.array([then.labels[i] == targets[i] for i in order], dtype=np.int64)
    # sent[k] items (the k least confident) go on: accuracy = then's on them + first's on the rest
    then_prefix = np.concatenate([[0], np.cumsum(right_then)])
    first_suffix = np.concatenate([np.cumsum(right_first[::-1])[::-1], [0]])
    cuts = [0] + [k for k in range(1, n) if confidence[k] > confidence[k - 1]] + [n]
    found = []
    for k in cuts:
        below = float(confidence[k - 1]) if k > 0 else -math.inf
        above = float(confidence[k]) if k < n else math.inf
        threshold = _shortest_between(below, above)
        metric = float(then_prefix[k] + first_suffix[k]) / n
        found.append(CascadePoint(threshold, metric, k / n))
    return found


def _shortest_between(low: float, high: float) -> float:
    """The decimal with the fewest digits in (low, high]: `confidence < t` sends on exactly
    the items at or below `low` (0 when none; just above 1 when all)."""
    if low == -math.inf:
        return 0.0
    if high == math.inf:
        return round(max(1.0, low) + 0.01, 2)
    for digits in range(1, 10):
        scale = 10.0**digits
        candidate = math.floor(low * scale + 1) / scale
        if low < candidate <= high:
            return candidate
    return high


def cheapest(found: Sequence[CascadePoint], min_metric: float) -> CascadePoint | None:
    """The point sending the fewest items on whose metric is at least `min_metric`."""
    good = [p for p in found if p.metric >= min_metric - 1e-12]
    return min(good, key=lambda p: (p.share_sent, -p.metric)) if good else None


def cascade_thresholds(entry: ModelEntry) -> list[CascadePoint]:
    """The curve of a loaded cascade model (`ModelRepository.load_one`) on its own eval data."""
    spec = entry.spec
    if spec is None or spec.cascade is None:
        raise SpecError(f"model {entry.name!r} is not a cascade (its model.yaml has no cascade:)")
    if spec.eval is None or spec.eval.metric != "accuracy":
        raise SpecError(
            f"cascade {entry.name!r} needs `eval: {{data: ..., metric: accuracy}}` in its "
            "model.yaml to choose a threshold on"
        )
    model = entry.latest
    if not isinstance(model, CascadeVersion):
        raise SpecError(f"cascade {entry.name!r} did not load: {'; '.join(entry.errors)}")
    examples = load_examples(entry.path / spec.eval.data)
    first, then = (
        ModelEntry(m.name, entry.path, m.spec, {m.version: m}) for m in (model.first, model.then)
    )
    return thresholds(first, then, examples)


def write_when(model_dir: Path, when: str) -> None:
    """Set the cascade's `when` in its model.yaml, keeping comments and layout; the file is
    replaced whole, and only with a spec that loads."""
    path = model_dir / "model.yaml"
    spec = load_spec(model_dir)
    if spec is None or spec.cascade is None:
        raise SpecError(f"{path} has no cascade: section to set `when` in")
    yaml, data = round_trip(path.read_text(encoding="utf-8"))
    data["cascade"]["when"] = when
    replace_text(path, dumped(yaml, data, path))
