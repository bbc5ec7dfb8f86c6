"""The markdown table, the JSON document and the PNG plot of a result."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from inferd_bench.config import BenchError
from inferd_bench.report import markdown, plot, to_json
from inferd_bench.result import BenchResult, Latency, Point, SearchStep


def make_point(label: str, throughput: float, p99: float, **extra: Any) -> Point:
    return Point(
        label=label,
        concurrency=extra.pop("concurrency", None),
        target_rate=extra.pop("target_rate", None),
        duration_s=2.0,
        sent=100,
        completed=100,
        ok=100,
        throughput=throughput,
        latency_ms=Latency(p99 / 3, p99 / 2, p99, p99 * 2, p99 / 3, 100),
        **extra,
    )


def make_result(scenario: str = "sweep", **extra: Any) -> BenchResult:
    points = extra.pop(
        "points",
        [
            make_point("c=1", 900.0, 2.0, concurrency=1),
            make_point(
                "c=4",
                2500.5,
                4.0,
                concurrency=4,
                errors={"404": 3, "timeout": 1},
                error_samples={"404": '{"error": "no model x"}'},
            ),
        ],
    )
    return BenchResult(
        url="http://127.0.0.1:8000",
        model="affine",
        protocol="v2",
        scenario=scenario,
        source="V2 JSON: 16 random requests",
        workers=1,
        started_at="2026-11-28T20:00:00+00:00",
        settings={"p99_bound_ms": extra.pop("bound", None)},
        points=points,
        headline="sweep: peak 2500.5 req/s at c=4",
        machine={"loop": "uvloop", "cpus": 2},
        **extra,
    )


def test_markdown_has_the_headline_and_one_row_per_point() -> None:
    text = markdown(make_result(notes=["a note"]))
    assert "**sweep: peak 2500.5 req/s at c=4**" in text
    rows = [line for line in text.splitlines() if line.startswith("| c=")]
    assert len(rows) == 2
    assert rows[1].split(" | ")[1] == "2,500.5"
    assert "404 x3, timeout x1" in rows[1]
    assert '`404`: {"error": "no model x"}' in text
    assert "- a note" in text
    assert "TTFT" not in text  # no generation columns without streams


def test_markdown_adds_generation_and_search_columns() -> None:
    stream = make_point(
        "c=1",
        3.0,
        900.0,
        ttft_ms=Latency(50, 60, 70, 80, 55, 3),
        itl_ms=Latency(5, 6, 7, 8, 5.5, 30),
        tokens_per_s=96.0,
    )
    text = markdown(make_result(points=[stream]))
    assert "TTFT p50 ms" in text and "| 96 |" in text
    search = [
        SearchStep(100.0, 2.0, 0.0, True, "grow"),
        SearchStep(200.0, 50.0, 0.0, False, "grow"),
    ]
    rate = make_point(
        "100/s", 99.0, 2.0, target_rate=100.0, send_lag_ms=Latency(0.1, 0.2, 0.3, 1, 0.1, 9)
    )
    text = markdown(make_result("server", points=[rate], search=search, best_rate=100.0))
    assert "send lag p99 ms" in text
    assert "| 2 (grow) | 200 | 50 | 0.00% | no |" in text


def test_json_round_trips_every_field() -> None:
    doc = json.loads(to_json(make_result()))
    assert doc["headline"].startswith("sweep")
    point = doc["points"][1]
    assert point["throughput"] == 2500.5
    assert point["latency_ms"]["p99"] == 4.0
    assert point["errors"] == {"404": 3, "timeout": 1}
    assert point["error_rate"] == pytest.approx(0.04)
    assert set(point) >= {"ttft_ms", "itl_ms", "tokens_per_s", "generator_cpu", "saturated"}


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "latency.png"
    plot(make_result(bound=5.0), out)
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size[0] > 300 and image.size[1] > 200


def test_plot_without_matplotlib_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(BenchError, match=r"pip install 'inferd\[plot\]'"):
        plot(make_result(), tmp_path / "x.png")
