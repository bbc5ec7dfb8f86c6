"""Bias between groups, with a gap injected into synthetic predictions: the measured
difference must find it within its interval, and a fair model's interval must cover 0."""

from __future__ import annotations

import numpy as np
import pytest

from inferd.errors import SpecError
from inferd.monitor import fairness
from inferd.spec import parse_spec
from inferd.store import LoggedRow
from tests.unit.monitor.rows import LABELS, loan_spec, row

SPEC = loan_spec(monitoring={"min_labels": 30})


def _rows(rate_a: float, rate_b: float, n: int = 1500, seed: int = 0) -> list[LoggedRow]:
    """n applicants per group; the truth is the same in both (a share rate_a is worthy);
    group A's worthy ones are all approved, group B's only as many as make its rate rate_b:
    an exact injected gap of rate_a - rate_b, and unequal true-positive rates."""
    rng = np.random.default_rng(seed)
    rows = []
    for group, rate in (("A", rate_a), ("B", rate_b)):
        worthy = rng.permutation(n) < round(rate_a * n)
        approved_count = round(rate * n)
        approved = worthy & (np.cumsum(worthy) <= approved_count)
        for truly, yes in zip(worthy, approved, strict=True):
            rows.append(
                row(
                    {"label": "approved" if yes else "denied"},
                    "approved" if truly else "denied",
                    {"x": [1.0], "group": [group]},
                )
            )
    return rows


def test_an_injected_gap_is_found_within_its_interval() -> None:
    report = fairness.measure(SPEC, _rows(0.5, 0.3), LABELS)
    assert report is not None and report["positive_label"] == "approved"
    group = report["attributes"]["group"]
    assert group["status"] == "ok"
    parity = group["demographic_parity_difference"]
    assert parity["value"] == pytest.approx(0.2)
    low, high = parity["ci"]
    assert low < 0.2 < high and high - low < 0.1
    odds = group["equalized_odds_difference"]
    assert odds["value"] == pytest.approx(0.4)  # B's true-positive rate is 0.3 / 0.5
    low, high = odds["ci"]
    assert low < 0.4 < high
    assert set(group["groups"]) == {"A", "B"}
    assert group["groups"]["A"]["selection_rate"] == pytest.approx(0.5)
    assert group["groups"]["B"]["metric"] == pytest.approx(0.8)  # 20% of B wrongly denied


def test_a_fair_model_s_interval_covers_zero() -> None:
    report = fairness.measure(SPEC, _rows(0.5, 0.5, seed=1), LABELS)
    assert report is not None
    parity = report["attributes"]["group"]["demographic_parity_difference"]
    assert parity["value"] == 0.0
    low, high = parity["ci"]
    assert low < 0.01 and high < 0.06  # a gap is never negative: its interval hugs 0
    assert report["attributes"]["group"]["equalized_odds_difference"]["value"] == 0.0


def test_a_missing_attribute_is_a_sentence_not_a_crash() -> None:
    rows = [row({"label": "approved"}, "approved", {"x": [1.0]}) for _ in range(50)]
    report = fairness.measure(SPEC, rows, LABELS)
    assert report is not None
    group = report["attributes"]["group"]
    assert group["status"] == "missing"
    assert "'group' is not in the logged inputs of 50 predictions" in group["message"]


def test_small_groups_are_listed_but_left_out() -> None:
    rows = _rows(0.5, 0.5, n=100) + [
        row({"label": "denied"}, "approved", {"x": [1.0], "group": ["C"]}) for _ in range(5)
    ]
    group = fairness.measure(SPEC, rows, LABELS)["attributes"]["group"]  # type: ignore[index]
    assert group["groups"]["C"]["counted"] is False and group["groups"]["C"]["n"] == 5
    assert "left out of the differences: C" in group["message"]
    assert group["demographic_parity_difference"]["value"] == 0.0  # C (all denied) not in it


def test_fairness_needs_the_attribute_logged() -> None:
    with pytest.raises(SpecError, match="not logged inputs"):
        parse_spec(
            {
                "name": "loans",
                "task": "classification",
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}],
                "postprocess": [{"type": "classify", "output": "y"}],
                "prediction_log": {"inputs": "all"},
                "fairness": {"attributes": ["group"]},
            }
        )
