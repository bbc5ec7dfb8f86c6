"""Confidence intervals for live figures, so a number from 40 labels is not read like one
from 40,000: Wilson's for a proportion, a seeded percentile bootstrap for anything else."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 200
SEED = 20261205  # the same rows give the same interval, run after run

T = TypeVar("T")


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of hits/n (good even near 0 or 1 and for small n)."""
    if n <= 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap(
    rows: Sequence[T],
    statistic: Callable[[Sequence[T]], float | None],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float] | None:
    """The 95% percentile-bootstrap interval of `statistic` over `rows` resampled with
    replacement; None when too few resamples give a value."""
    if not rows:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        picked = rng.integers(0, len(rows), len(rows))
        value = statistic([rows[i] for i in picked])
        if value is not None and math.isfinite(value):
            values.append(value)
    if len(values) < resamples // 2:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return (float(low), float(high))


__all__ = ["BOOTSTRAP_RESAMPLES", "SEED", "Z95", "bootstrap", "wilson"]
