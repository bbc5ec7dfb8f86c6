"""Evaluate a model on its labelled held-out data, through the same pipeline that serves it.

The data file (model.yaml `eval.data`) is JSON lines, one `{"instance": ..., "target": ...}`
per example, where the instance is exactly what a V1 client would send.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferd.errors import InferdError, SpecError
from inferd.repository import ModelEntry
from inferd.scoring import history_of, mase, score, seasonal_naive
from inferd.scoring.average_precision import mean_average_precision
from inferd.spec import EvalSpec, load_labels

_LOWER_IS_BETTER = {"mae", "rmse", "mase"}


@dataclass(frozen=True)
class ClassScores:
    """One class of a classifier's eval: how often it was predicted, and how often rightly."""

    support: int
    """Examples whose target is this class."""
    predicted: int
    """Examples predicted as this class."""
    correct: int
    """Examples of this class predicted as it."""

    @property
    def precision(self) -> float | None:
        """Of the examples predicted as this class, the share that are (None: none predicted)."""
        return self.correct / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        """Of the examples of this class, the share predicted as it (None: no examples)."""
        return self.correct / self.support if self.support else None


def class_scores(
    predicted: Sequence[Any], targets: Sequence[Any], labels: Sequence[str] | None = None
) -> dict[str, ClassScores]:
    """Per-class precision, recall and support of paired predictions and targets.

    Classes are compared as text, as accuracy does; a prediction of None (an example that
    failed) is wrong for its target's class and counts as no class's prediction. The classes
    are `labels` in their order, then any other predicted or target class, sorted.
    """
    if len(predicted) != len(targets):
        raise ValueError(f"{len(predicted)} predictions for {len(targets)} targets")
    truth = [str(t) for t in targets]
    guess = [None if p is None else str(p) for p in predicted]
    known = list(labels or [])
    others = {t for t in truth if t not in known} | {
        p for p in guess if p is not None and p not in known
    }
    return {
        name: ClassScores(
            support=truth.count(name),
            predicted=guess.count(name),
            correct=sum(t == name and p == name for p, t in zip(guess, truth, strict=True)),
        )
        for name in [*known, *sorted(others)]
    }


@dataclass
class EvalReport:
    model: str
    version: int
    metric: str
    value: float
    count: int
    failed: int
    threshold: float | None
    baseline: float | None = None
    """The same metric for a reference forecaster (mase: the seasonal-naive forecast)."""
    per_class: dict[str, float] | None = None
    """map: each class's average precision."""
    classes: dict[str, ClassScores] | None = None
    """accuracy: each class's precision, recall and support (failed examples are misses)."""
    min_recall: dict[str, float] | None = None
    """The recall each listed class must reach (the spec's eval.min_recall)."""

    @property
    def failures(self) -> list[str]:
        """Each requirement that is not met, in words (empty when all are)."""
        problems = []
        if self.threshold is not None:
            lower = self.metric in _LOWER_IS_BETTER
            if not (self.value <= self.threshold if lower else self.value >= self.threshold):
                side = "above" if lower else "below"
                problems.append(
                    f"{self.metric} {self.value:.4f} is {side} the threshold {self.threshold}"
                )
        for name, required in (self.min_recall or {}).items():
            scores = (self.classes or {}).get(name)
            recall = scores.recall if scores is not None else None
            if recall is None:
                problems.append(
                    f"recall of {name!r} cannot be measured: the eval data has no {name!r} "
                    f"examples (min_recall {required})"
                )
            elif recall < required:
                problems.append(f"recall of {name!r} {recall:.4f} is below the required {required}")
        return problems

    @property
    def passed(self) -> bool | None:
        """Whether the threshold and every min_recall are met (None when the spec sets none)."""
        if self.threshold is None and not self.min_recall:
            return None
        return not self.failures


def load_examples(path: Path) -> list[tuple[Any, Any]]:
    if not path.exists():
        raise SpecError(f"eval data {path} does not exist")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            examples.append((record["instance"], record["target"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SpecError(
                f'{path}:{number}: each line must be {{"instance": ..., "target": ...}}'
            ) from None
    if not examples:
        raise SpecError(f"eval data {path} has no examples")
    return examples


def _prediction_value(fields: dict[str, Any], metric: str) -> Any:
    if metric == "accuracy":
        return fields.get("label")
    if metric == "mase":
        return fields.get("forecast")
    if metric == "map":
        return fields.get("detections")
    if "value" in fields:
        return fields["value"]
    numbers = [v for v in fields.values() if isinstance(v, int | float)]
    return numbers[0] if numbers else None


def evaluate(
    entry: ModelEntry, eval_spec: EvalSpec | None = None, version: int | None = None
) -> EvalReport:
    """Run the served (latest) version, or the loaded `version`, over the eval data and
    score it."""
    spec = eval_spec or (entry.spec.eval if entry.spec is not None else None)
    if spec is None:
        raise SpecError(f"model {entry.name!r} has no eval: section in its model.yaml")
    model = entry.latest if version is None else entry.versions.get(version)
    if model is None:
        raise SpecError(f"model {entry.name!r} did not load: {'; '.join(entry.errors)}")
    labels = load_labels(entry.spec, entry.path) if entry.spec is not None else None
    if spec.min_recall and labels is not None:
        _check_classes(spec.min_recall, labels, "the model's labels")
    examples = load_examples(entry.path / spec.data)
    outcomes = model.predictive.predict_instances([instance for instance, _ in examples])
    predicted: list[Any] = []
    targets: list[Any] = []
    instances: list[Any] = []
    every_label: list[Any] = []  # accuracy: every example's predicted label, None if it failed
    failed = 0
    for outcome, (instance, target) in zip(outcomes, examples, strict=True):
        every_label.append(None)
        if isinstance(outcome, InferdError):
            failed += 1
            if spec.metric == "map":  # an image that failed found nothing
                predicted.append([])
                targets.append(target)
            continue
        predicted.append(_prediction_value(outcome.fields, spec.metric))
        every_label[-1] = predicted[-1]
        targets.append(target)
        instances.append(instance)
    baseline = None
    per_class = None
    if not predicted:
        value = float("nan")
    elif spec.metric == "map":
        try:
            value, per_class = mean_average_precision(predicted, targets, spec.iou)
        except ValueError as error:
            raise SpecError(f"eval data {spec.data}: {error}") from None
    elif spec.metric == "mase":
        histories = [history_of(instance) for instance in instances]
        value = mase(predicted, targets, histories, spec.season)
        naive = [
            seasonal_naive(h, len(t), spec.season) for h, t in zip(histories, targets, strict=True)
        ]
        baseline = mase(naive, targets, histories, spec.season)
    else:
        value = score(spec.metric, predicted, targets)
    classes = None
    if spec.metric == "accuracy":
        if failed:
            value = value * len(predicted) / len(examples)  # a failed example is a wrong one
        classes = class_scores(every_label, [target for _, target in examples], labels)
        if spec.min_recall and labels is None:
            _check_classes(
                spec.min_recall, list(classes), "the eval data's and predictions' classes"
            )
    return EvalReport(
        model=entry.name,
        version=model.version,
        metric=spec.metric,
        value=value,
        count=len(examples),
        failed=failed,
        threshold=spec.threshold,
        baseline=baseline,
        per_class=per_class,
        classes=classes,
        min_recall=dict(spec.min_recall) if spec.min_recall else None,
    )


def _check_classes(min_recall: dict[str, float], known: Sequence[str], where: str) -> None:
    """min_recall may name only classes the model can predict."""
    unknown = [name for name in min_recall if name not in known]
    if unknown:
        raise SpecError(
            f"eval.min_recall names unknown class(es) {', '.join(map(repr, unknown))}; "
            f"{where} are: {', '.join(known)}"
        )
