"""Synthetic credit applications with a known, injected bias between two groups.

Each applicant has a creditworthiness score z ~ N(0, 1) that is an exact linear function of
four standardized features: z = (x_income + x_savings + x_history - x_debt) / 2, with the
x's independent N(0, 1). The features are shown in familiar units (thousands a year, a debt
ratio, years of credit history, thousands saved) and a fifth, the loan amount, that does not
matter. Every applicant also belongs to group A or B (a fair coin, independent of
everything else), so the groups are equally creditworthy.

- **The truth** (did the applicant repay?): repaid when z + 0.5·e > 0, e ~ N(0, 1) — the
  same rule for both groups. `/v1/feedback` replays these outcomes as labels.
- **The history** a lender decided by (the biased training labels): approved when z > 0
  for group A but only when z > 0.5 for group B. A model trained on these decisions inherits
  the stricter bar: it approves A at Φ(0) = 0.5 and B at Φ(-0.5) ≈ 0.3085, a demographic
  parity difference of exactly `INJECTED_GAP` = Φ(0) - Φ(-0.5) ≈ 0.1915.

A model trained on the true outcome instead (the fair reference, which never sees the
group) approves both groups alike: its demographic parity difference is 0 up to sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURES = ["income", "debt_ratio", "credit_history_years", "savings", "loan_amount"]
GROUPS = ["A", "B"]
LABELS = ["denied", "approved"]  # the model's classes, index = its logit
BAR = {"A": 0.0, "B": 0.5}
"""The score the historical decisions required of each group."""
OUTCOME_NOISE = 0.5


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


INJECTED_GAP = normal_cdf(-BAR["A"]) - normal_cdf(-BAR["B"])
"""The approval-rate gap the biased history puts between A and B: 0.19146..."""


@dataclass(frozen=True)
class Applicants:
    features: np.ndarray  # (n, 5) in the units clients send, FEATURES order
    group: np.ndarray  # (n,) "A" or "B"
    score: np.ndarray  # z
    repaid: np.ndarray  # (n,) bool: the truth
    approved: np.ndarray  # (n,) bool: the biased history

    def instance(self, index: int) -> dict[str, Any]:
        """One applicant as a V1 instance (what a client sends)."""
        row = {
            name: round(float(v), 4) for name, v in zip(FEATURES, self.features[index], strict=True)
        }
        row["group"] = str(self.group[index])
        return row

    def label(self, outcome: np.ndarray, index: int) -> str:
        return LABELS[int(outcome[index])]


def generate(count: int, seed: int) -> Applicants:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, 4))  # income, debt, history, savings (standardized)
    score = (x[:, 0] - x[:, 1] + x[:, 2] + x[:, 3]) / 2.0
    features = np.column_stack(
        [
            55.0 + 18.0 * x[:, 0],  # income, thousands a year
            0.35 + 0.1 * x[:, 1],  # debt payments over income
            10.0 + 4.0 * x[:, 2],  # years of credit history
            20.0 + 8.0 * x[:, 3],  # savings, thousands
            rng.uniform(5.0, 50.0, count),  # loan amount, thousands: irrelevant
        ]
    )
    group = np.where(rng.random(count) < 0.5, "A", "B")
    repaid = score + OUTCOME_NOISE * rng.standard_normal(count) > 0
    bar = np.where(group == "A", BAR["A"], BAR["B"])
    approved = score > bar
    return Applicants(features, group, score, repaid, approved)


__all__ = ["BAR", "FEATURES", "GROUPS", "INJECTED_GAP", "LABELS", "Applicants", "generate"]
