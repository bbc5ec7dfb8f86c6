"""Bias, live: a model's predictions compared across the groups of each sensitive attribute
its model.yaml names (`fairness:`), from the prediction log and its feedback.

Per group: predictions, the share given the favourable label (selection rate) and the chosen
metric over its labelled predictions. Between groups: demographic parity difference (the
largest gap in selection rates; needs no labels) and equalized odds difference (the larger of
the gaps in true- and false-positive rates; needs labels), both from fairlearn, with seeded
bootstrap intervals (a difference is never negative, so a fair model's interval is a narrow
one just above 0, not one around it). Groups under `min_group_size` are listed but left out of the
differences. An attribute the log does not hold is said plainly, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from inferd.monitor.intervals import BOOTSTRAP_RESAMPLES, SEED, bootstrap, wilson
from inferd.spec import FairnessSpec, ModelSpec
from inferd.store import LoggedRow

Metric = Callable[[Sequence[LoggedRow]], float | None]


def positive_label(fairness: FairnessSpec, labels: Sequence[str] | None) -> str | None:
    """The favourable label: as given, or a two-label classifier's last label."""
    if fairness.positive_label is not None:
        return fairness.positive_label
    if labels is not None and len(labels) == 2:
        return labels[-1]
    return None


def attribute_of(row: LoggedRow, name: str) -> str | None:
    """A row's value of a sensitive attribute, as text (a one-element list is its element)."""
    inputs = row.inputs
    if not inputs or name not in inputs:
        return None
    value = inputs[name]
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or isinstance(value, list | dict):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _group_metric(name: str, positive: str | None) -> Metric:
    def selected(row: LoggedRow) -> bool:
        return str(row.prediction.get("label")) == positive

    def truly(row: LoggedRow) -> bool:
        return str(row.feedback) == positive

    def accuracy(rows: Sequence[LoggedRow]) -> float | None:
        return sum(str(r.prediction.get("label")) == str(r.feedback) for r in rows) / len(rows)

    def recall(rows: Sequence[LoggedRow]) -> float | None:
        actual = [r for r in rows if truly(r)]
        return sum(map(selected, actual)) / len(actual) if actual else None

    def precision(rows: Sequence[LoggedRow]) -> float | None:
        chosen = [r for r in rows if selected(r)]
        return sum(map(truly, chosen)) / len(chosen) if chosen else None

    def f1(rows: Sequence[LoggedRow]) -> float | None:
        p, r = precision(rows), recall(rows)
        return 2 * p * r / (p + r) if p is not None and r is not None and p + r > 0 else None

    def selection_rate(rows: Sequence[LoggedRow]) -> float | None:
        return sum(map(selected, rows)) / len(rows)

    def mae(rows: Sequence[LoggedRow]) -> float | None:
        from inferd.monitor.accuracy import _regression_error

        errors = [e for e in map(_regression_error, rows) if e is not None]
        return float(np.mean(errors)) if errors else None

    metrics: dict[str, Metric] = {
        "accuracy": accuracy,
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "selection_rate": selection_rate,
        "mae": mae,
    }
    return metrics[name]


class _Outcomes:
    """One attribute's rows as arrays: group, favourable prediction, favourable truth
    (labelled rows only), so a bootstrap resamples indices, not rows."""

    def __init__(self, rows: Sequence[LoggedRow], attribute: str, positive: str) -> None:
        self.groups = np.array([attribute_of(r, attribute) for r in rows])
        self.chosen = np.array([str(r.prediction.get("label")) == positive for r in rows])
        self.labelled = np.array([r.feedback is not None for r in rows])
        self.truth = np.array([str(r.feedback) == positive for r in rows])
        self.names = sorted(set(self.groups.tolist()))

    def parity(self, pick: np.ndarray | None = None) -> float | None:
        """The largest gap between groups' selection rates (fairlearn's definition)."""
        groups, chosen = self._picked(pick, labelled_only=False)
        rates = [chosen[groups == g].mean() for g in self.names if (groups == g).any()]
        return float(max(rates) - min(rates)) if len(rates) >= 2 else None

    def odds(self, pick: np.ndarray | None = None) -> float | None:
        """The larger of the gaps in true- and false-positive rates (fairlearn's definition);
        None unless every group has labels of both outcomes."""
        groups, chosen = self._picked(pick, labelled_only=True)
        truth = self.truth[self.labelled] if pick is None else self.truth[pick][self.labelled[pick]]
        tpr, fpr = [], []
        for g in self.names:
            mine = groups == g
            positives, negatives = mine & truth, mine & ~truth
            if not positives.any() or not negatives.any():
                return None
            tpr.append(chosen[positives].mean())
            fpr.append(chosen[negatives].mean())
        return float(max(max(tpr) - min(tpr), max(fpr) - min(fpr)))

    def _picked(
        self, pick: np.ndarray | None, labelled_only: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        groups, chosen, labelled = self.groups, self.chosen, self.labelled
        if pick is not None:
            groups, chosen, labelled = groups[pick], chosen[pick], labelled[pick]
        if labelled_only:
            return groups[labelled], chosen[labelled]
        return groups, chosen

    def fairlearn(self) -> tuple[float | None, float | None]:
        """The same two differences computed by fairlearn itself (the reported values)."""
        from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

        chosen = self.chosen.astype(int)
        parity = (
            float(demographic_parity_difference(chosen, chosen, sensitive_features=self.groups))
            if len(self.names) >= 2
            else None
        )
        odds = None
        if self.odds() is not None:
            mask = self.labelled
            odds = float(
                equalized_odds_difference(
                    self.truth[mask].astype(int), chosen[mask], sensitive_features=self.groups[mask]
                )
            )
        return parity, odds

    def interval(self, statistic: str) -> list[float] | None:
        """A seeded percentile-bootstrap 95% interval of `parity` or `odds`."""
        rng = np.random.default_rng(SEED)
        size = len(self.groups)
        values = []
        for _ in range(BOOTSTRAP_RESAMPLES):
            value = getattr(self, statistic)(rng.integers(0, size, size))
            if value is not None:
                values.append(value)
        if len(values) < BOOTSTRAP_RESAMPLES // 2:
            return None
        low, high = np.percentile(values, [2.5, 97.5])
        return [float(low), float(high)]


def _attribute(
    spec: ModelSpec,
    fairness: FairnessSpec,
    rows: Sequence[LoggedRow],
    attribute: str,
    positive: str | None,
) -> dict[str, Any]:
    grouped: dict[str, list[LoggedRow]] = {}
    lacking = 0
    for row in rows:
        value = attribute_of(row, attribute)
        if value is None:
            lacking += 1
        else:
            grouped.setdefault(value, []).append(row)
    result: dict[str, Any] = {
        "status": "ok",
        "message": "",
        "groups": {},
        "demographic_parity_difference": None,
        "equalized_odds_difference": None,
    }
    if not grouped:
        result["status"] = "missing"
        result["message"] = (
            f"the sensitive attribute {attribute!r} is not in the logged inputs of "
            f"{len(rows)} predictions of {spec.name!r}: send it as an input and log it "
            "(prediction_log: {inputs: all}) to measure fairness over it"
        )
        return result
    metric = _group_metric(fairness.metric, positive)
    for value, members in sorted(grouped.items()):
        labelled = [r for r in members if r.feedback is not None]
        entry: dict[str, Any] = {"n": len(members), "labelled": len(labelled)}
        if positive is not None:
            chosen = sum(str(r.prediction.get("label")) == positive for r in members)
            entry["selection_rate"] = chosen / len(members)
            entry["selection_rate_ci"] = list(wilson(chosen, len(members)))
        entry["metric"] = metric(labelled) if labelled else None
        entry["ci"] = _metric_interval(fairness.metric, metric, labelled, positive)
        entry["counted"] = len(members) >= fairness.min_group_size
        result["groups"][value] = entry
    counted = [r for v, m in grouped.items() if len(m) >= fairness.min_group_size for r in m]
    kept = sum(1 for entry in result["groups"].values() if entry["counted"])
    notes = []
    if lacking:
        notes.append(f"{lacking} predictions without {attribute!r} are left out")
    small = [v for v, e in result["groups"].items() if not e["counted"]]
    if small:
        notes.append(
            f"groups under {fairness.min_group_size} predictions are left out of the "
            f"differences: {', '.join(small)}"
        )
    if kept < 2:
        result["status"] = "too few predictions"
        notes.insert(
            0,
            f"fewer than two groups of {attribute!r} have {fairness.min_group_size} "
            "predictions: no difference to measure yet",
        )
    elif positive is None:
        notes.insert(0, "no positive_label: the differences need the favourable label")
    else:
        outcomes = _Outcomes(counted, attribute, positive)
        parity, odds = outcomes.fairlearn()
        if parity is not None:
            result["demographic_parity_difference"] = {
                "value": parity,
                "ci": outcomes.interval("parity"),
            }
        if odds is not None and int(outcomes.labelled.sum()) >= spec.monitoring.min_labels:
            result["equalized_odds_difference"] = {
                "value": odds,
                "ci": outcomes.interval("odds"),
            }
        else:
            notes.append(
                "equalized odds needs labels of both outcomes in every group "
                f"(at least {spec.monitoring.min_labels} labelled predictions)"
            )
    result["message"] = "; ".join(notes)
    return result


def _metric_interval(
    name: str, metric: Metric, rows: Sequence[LoggedRow], positive: str | None
) -> list[float] | None:
    """Wilson's interval for accuracy (a proportion of the rows), a bootstrap otherwise."""
    if not rows:
        return None
    if name == "accuracy":
        hits = sum(str(r.prediction.get("label")) == str(r.feedback) for r in rows)
        return list(wilson(hits, len(rows)))
    ci = bootstrap(rows, metric, resamples=100)
    return list(ci) if ci else None


def measure(
    spec: ModelSpec, rows: Sequence[LoggedRow], labels: Sequence[str] | None
) -> dict[str, Any] | None:
    """The fairness section of a report (None when model.yaml has no `fairness:`)."""
    fairness = spec.fairness
    if fairness is None:
        return None
    positive = positive_label(fairness, labels) if spec.task == "classification" else None
    return {
        "metric": fairness.metric,
        "positive_label": positive,
        "min_group_size": fairness.min_group_size,
        "attributes": {
            name: _attribute(spec, fairness, rows, name, positive) for name in fairness.attributes
        },
    }


__all__ = ["attribute_of", "measure", "positive_label"]
