"""The report: every section from the log, per version, with the notes that explain it."""

from __future__ import annotations

import pytest

from inferd.monitor.profile import build_profile
from inferd.monitor.report import build_report
from tests.unit.monitor.rows import loan_spec, row

SPEC = loan_spec(
    fairness={"attributes": ["group"], "min_group_size": 5},
    monitoring={"min_labels": 10, "buckets": 2},
    slo={"p99_ms": 3.0},
)


def _rows(version: str, count: int) -> list:  # type: ignore[type-arg]
    return [
        row(
            {"label": "approved" if i % 2 else "denied"},
            "approved" if i % 2 else "denied",
            {"x": [float(i)], "group": ["A" if i % 4 < 2 else "B"]},
            version=version,
            created_at=float(i),
            latency_ms=1.0 + i % 5,
            stage_ms={"queue": 0.1, "preprocess": 0.2, "model": 0.5 + i % 3, "postprocess": 0.05},
            cpu_ms=2.0,
            energy_j=0.02,
            energy_method="estimate",
            cost=1e-6,
        )
        for i in range(count)
    ]


def test_a_report_has_every_section_per_version() -> None:
    rows = _rows("1", 40) + _rows("2", 20)
    profile = build_profile([{"x": [float(i)], "group": ["A"]} for i in range(40)])
    report = build_report(
        SPEC,
        rows,
        since=0.0,
        until=40.0,
        labels=["denied", "approved"],
        profiles={"1": profile},
        currency="EUR",
        gco2_per_kwh=500.0,
        notes=["energy is an estimate"],
    )
    assert report["model"] == "loans" and list(report["versions"]) == ["1", "2"]
    assert report["window"] == {"since": 0.0, "until": 40.0, "seconds": 40.0}
    one = report["versions"]["1"]
    assert one["predictions"] == 40 and one["labelled"] == 40
    assert one["latency_ms"]["model"]["p50"] == pytest.approx(1.5)
    assert one["latency_ms"]["total"]["p99"] == pytest.approx(5.0, abs=0.1)
    assert one["slo"] == {"p99_ms": 3.0, "attainment": 24 / 40, "met": 24, "total": 40}
    assert one["cost"]["per_1000"] == pytest.approx(1e-3) and one["cost"]["currency"] == "EUR"
    assert one["energy"] == {
        "method": "estimate",
        "joules_per_1000": pytest.approx(20.0),
        "gco2e_per_1000": pytest.approx(20.0 * 500 / 3.6e6),
    }
    assert one["accuracy"]["value"] == 1.0 and len(one["accuracy"]["over_time"]) == 2
    assert one["fairness"]["attributes"]["group"]["status"] == "ok"
    assert one["drift"]["status"] == "ok" and "x" in one["drift"]["features"]
    assert report["versions"]["2"]["drift"]["status"] == "no reference profile"
    assert report["notes"] == ["energy is an estimate"]


def test_an_empty_window_says_so() -> None:
    report = build_report(SPEC, [], since=0.0, until=10.0)
    assert report["versions"] == {}
    assert report["notes"] == ["no logged predictions of 'loans' in the window"]
