"""Figures with their targets, plain-text tables, and the JSON a run leaves in bench/results/."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import RESULTS


@dataclass
class Figure:
    section: str
    name: str
    value: float | None
    unit: str
    target: str | None = None  # e.g. ">= 0.70"
    verdict: str | None = None  # PASS / MISS / None (informational)


def judge(value: float | None, op: str, threshold: float) -> str:
    if value is None:
        return "MISS"
    ok = value >= threshold if op == ">=" else value <= threshold
    return "PASS" if ok else "MISS"


def figure(
    section: str,
    name: str,
    value: float | None,
    unit: str,
    op: str | None = None,
    threshold: float | None = None,
    fmt: str = "{:.2f}",
) -> Figure:
    if op is None or threshold is None:
        return Figure(section, name, value, unit)
    return Figure(
        section, name, value, unit, f"{op} {fmt.format(threshold)}", judge(value, op, threshold)
    )


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.0%}"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit in ("req/s", "items/s", "req/cpu-s"):
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def figures_table(figures: list[Figure]) -> str:
    rows = [
        [f.name, fmt_value(f.value, f.unit), f.target or "", f.verdict or "(info)"] for f in figures
    ]
    return table(["figure", "value", "target", "verdict"], rows, "lrll")


def result_path(kind: str) -> Path:
    """bench/results/<kind>-<timestamp>.json, where a run's JSON goes unless told otherwise."""
    return RESULTS / f"{kind}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"


def write_json(result: dict[str, Any], out: Path) -> None:
    """Write a run's result (anything not JSON-native as its str), creating the folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
