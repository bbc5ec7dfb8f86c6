"""Drift: whether live inputs still look like the reference profile (`profile.py`).

Per feature: the population stability index (PSI) over the reference's quantile bins (or its
categories), and for numeric features the two-sample Kolmogorov-Smirnov statistic and p-value
(scipy). A common reading of PSI: under 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a
major one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from inferd.monitor.profile import Profile
from inferd.store import LoggedRow

_FLOOR = 1e-4  # an empty bin's share, so PSI stays finite


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index between two distributions over the same bins."""
    e = np.maximum(np.asarray(expected, np.float64), _FLOOR)
    a = np.maximum(np.asarray(actual, np.float64), _FLOOR)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def _binned(reference: list[float], live: list[float], bins: int) -> float:
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1))[1:-1])
    expected = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1
    )
    actual = np.bincount(np.searchsorted(edges, live, side="right"), minlength=len(edges) + 1)
    return psi(expected.tolist(), actual.tolist())


def measure(profile: Profile | None, rows: Sequence[LoggedRow], bins: int) -> dict[str, Any]:
    """The drift section of one version's report."""
    if profile is None:
        return {
            "status": "no reference profile",
            "message": "no profile.json in the version folder: run `inferd evaluate` on it "
            "to save one from its eval data",
            "features": {},
        }
    columns: dict[str, list[float | str]] = {}
    for row in rows:
        if row.inputs:
            for name, value in profile.features(row.inputs).items():
                columns.setdefault(name, []).append(value)
    if not columns:
        return {
            "status": "no logged inputs",
            "message": "the prediction log keeps no inputs (prediction_log: {inputs: all})",
            "features": {},
        }
    features: dict[str, Any] = {}
    for name, values in sorted(columns.items()):
        if name in profile.numeric:
            live = [float(v) for v in values]
            reference = profile.numeric[name]
            from scipy.stats import ks_2samp

            test = ks_2samp(reference, live)
            features[name] = {
                "kind": "numeric",
                "n": len(live),
                "psi": _binned(reference, live, bins),
                "ks": float(test.statistic),
                "p_value": float(test.pvalue),
            }
        elif name in profile.categorical:
            shares = profile.categorical[name]
            words = [str(v) for v in values]
            categories = sorted(set(shares) | set(words))
            actual = [words.count(c) / len(words) for c in categories]
            features[name] = {
                "kind": "categorical",
                "n": len(words),
                "psi": psi([shares.get(c, 0.0) for c in categories], actual),
                "unseen": sorted(set(words) - set(shares))[:10],
            }
    for entry in features.values():
        if not math.isfinite(entry["psi"]):
            entry["psi"] = None
    return {"status": "ok", "message": "", "features": features}


__all__ = ["measure", "psi"]
