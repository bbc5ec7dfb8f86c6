"""The report: a table in markdown and JSON, and the Pareto chart."""

from __future__ import annotations

import json
from pathlib import Path

from inferd.optimize.tuning import report
from inferd.optimize.tuning.choice import Bounds, Row, metric_ok
from inferd.optimize.tuning.search import Load, Measurement, plan
from inferd.optimize.tuning.space import Config


def rows() -> list[Row]:
    fast = Row(
        Config(2, "cpu", 1, 8, 0.5), 0.97, Measurement(300.0, 4.8, 299.0), 1, True, True, True
    )
    slow = Row(Config(1, "cpu", 2, 1, 0.0), 0.99, Measurement(120.0, 4.1, 119.0), 1, True, True)
    bad = Row(
        Config(3, "cpu", 1, 32, 1.25),
        0.80,
        Measurement(400.0, 4.9, 398.0),
        0,
        metric_ok("accuracy", 0.8, 0.95),
    )
    late = Row(Config(1, "cpu", 1, 32, 1.25), 0.99, Measurement(None, 7.5, 50.0), 0, True)
    return [fast, slow, bad, late]


def summary(chosen: Row | None) -> report.Summary:
    return report.Summary(
        model="digits",
        metric="accuracy",
        metric_limit=0.95,
        best_source=0.99,
        bounds=Bounds(5.0),
        plan=plan(4, 500, Load()),
        cpu="Test CPU, 2 cores; has avx2; lacks amx",
        seconds=42.0,
        chosen=chosen,
        confirmed=Measurement(300.0, 4.5, 298.0, offered=300.0),
    )


def test_report_writes_table_json_and_chart(tmp_path: Path) -> None:
    table = rows()
    folder = report.write(tmp_path / "out", table, summary(table[0]))
    text = (folder / "report.md").read_text()
    assert "lacks amx" in text
    assert "chosen: **v2 cpu t1 b8 d0.5**" in text
    assert "| v3 cpu t1 b32 d1.25 | 3 | cpu | 1 | 32 | 1.25 | 0.8 | 400 | 4.9 |" in text
    assert "misses metric" in text and "misses p99" in text
    data = json.loads((folder / "report.json").read_text())
    assert data["chosen"]["version"] == 2 and data["chosen"]["max_delay_ms"] == 0.5
    assert [c["chosen"] for c in data["configurations"]] == [True, False, False, False]
    assert data["confirmed"]["p99_ms"] == 4.5
    png = (folder / "pareto.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_report_without_a_choice_says_none(tmp_path: Path) -> None:
    table = rows()[2:]
    folder = report.write(tmp_path / "out", table, summary(None))
    assert "chosen: **none**" in (folder / "report.md").read_text()
    assert json.loads((folder / "report.json").read_text())["chosen"] is None
    assert (folder / "pareto.png").stat().st_size > 0
