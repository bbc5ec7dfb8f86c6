"""`inferd report`'s page from report dicts: its charts inline, the energy method named, and
a sentence (not an empty chart) for every piece that is missing."""

from __future__ import annotations

from typing import Any

from inferd.monitor.html import render
from inferd.monitor.profile import build_profile
from inferd.monitor.report import build_report
from tests.unit.monitor.rows import loan_spec, row

SPEC = loan_spec(
    fairness={"attributes": ["group"], "min_group_size": 5},
    monitoring={"min_labels": 10, "buckets": 3},
)


def _rows(labelled: bool, with_group: bool) -> list[Any]:
    return [
        row(
            {"label": "approved" if i % 3 else "denied"},
            ("approved" if i % 2 else "denied") if labelled else None,
            {"x": [float(i)], **({"group": ["A" if i % 2 else "B"]} if with_group else {})},
            created_at=float(i),
            stage_ms={"queue": 0.1, "preprocess": 0.2, "model": 1.0, "postprocess": 0.1},
            cpu_ms=1.0,
            energy_j=0.01,
            energy_method="rapl",
            cost=1e-6,
        )
        for i in range(60)
    ]


def test_a_full_report_draws_every_chart_and_names_the_energy_method() -> None:
    profile = build_profile([{"x": [float(i)], "group": ["A"]} for i in range(50)])
    report = build_report(
        SPEC,
        _rows(True, True),
        since=0.0,
        until=60.0,
        labels=["denied", "approved"],
        profiles={"1": profile},
        currency="EUR",
        notes=["energy from RAPL"],
    )
    page = render(report)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert page.count("data:image/png;base64,") == 5
    assert "<td>rapl</td>" in page and "cost per 1,000 (EUR)" in page
    assert "demographic parity difference" in page and "energy from RAPL" in page


def test_missing_pieces_are_sentences() -> None:
    report = build_report(SPEC, _rows(False, False), since=0.0, until=60.0)
    page = render(report)
    assert "too few labels (0 labelled, 10 needed); send labels to POST /v1/feedback" in page
    assert "the sensitive attribute &#x27;group&#x27; is not in the logged inputs" in page
    assert "no reference profile" in page and "inferd evaluate" in page
    assert "no cost: start the server with --price-per-hour" not in page  # rows were priced
    empty = render(build_report(SPEC, [], since=0.0, until=60.0))
    assert "no logged predictions" in empty and "data:image/png" not in empty
