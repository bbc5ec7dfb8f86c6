"""The loan-approval example's promise, checked in process: the history's injected gap is
the analytic Φ(0) - Φ(-0.5), the served biased model reproduces it through inferd's own
pipeline, and the fair reference does not (fresh applicants, not the training ones)."""

from __future__ import annotations

import numpy as np
from fairlearn.metrics import demographic_parity_difference

from examples.loan_approval.data import INJECTED_GAP, generate
from inferd.repository import load_model
from tests.e2e.conftest import BUNDLED


def test_the_history_carries_the_injected_gap() -> None:
    applicants = generate(200_000, seed=11)
    approved = applicants.approved.astype(int)
    gap = demographic_parity_difference(approved, approved, sensitive_features=applicants.group)
    assert abs(gap - INJECTED_GAP) < 0.006  # 3 standard errors at this size
    assert (
        abs(
            applicants.repaid[applicants.group == "A"].mean()
            - applicants.repaid[applicants.group == "B"].mean()
        )
        < 0.006
    )


def _gap(model: str, count: int = 20_000) -> float:
    entry = load_model(BUNDLED / model)
    version = entry.latest
    assert version is not None and version.pipeline is not None, entry.errors
    applicants = generate(count, seed=12)
    answers = version.pipeline.predict_instances([applicants.instance(i) for i in range(count)])
    chosen = np.array([a.fields["label"] == "approved" for a in answers], dtype=int)
    return float(demographic_parity_difference(chosen, chosen, sensitive_features=applicants.group))


def test_the_biased_model_inherits_the_gap_and_the_fair_one_does_not() -> None:
    assert abs(_gap("loan-approval") - INJECTED_GAP) < 0.03
    assert _gap("loan-approval-fair") < 0.03
