"""The report `inferd tune` writes: a table (markdown and JSON) of every configuration
measured, and a Pareto chart (PNG) of the task metric and the p99 against throughput, the
chosen configuration marked, each labelled. Every figure is from this run on this machine."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferd.errors import SpecError
from inferd.optimize.tuning.choice import Bounds, Row
from inferd.optimize.tuning.search import Measurement, Plan


@dataclass
class Summary:
    """Everything the report states besides the rows."""

    model: str
    metric: str
    metric_limit: float | None
    best_source: float
    bounds: Bounds
    plan: Plan
    cpu: str
    seconds: float
    chosen: Row | None
    confirmed: Measurement | None = None
    notes: list[str] = field(default_factory=list)


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _settings(row: Row) -> list[str]:
    """The cells that say how a configuration serves: a cascade's `when` and the share of
    items it sends on, or version, device, threads and batching."""
    c = row.config
    if c.threshold is not None:
        return [f"confidence < {c.threshold:g}", _share(row.share_sent)]
    return [
        str(c.version),
        str(c.device),
        str(c.threads),
        str(c.max_batch_size),
        f"{c.max_delay_ms or 0:g}",
    ]


def markdown(rows: Sequence[Row], summary: Summary) -> str:
    s = summary
    limit = (
        "none"
        if s.metric_limit is None
        else f"{s.metric} {'≤' if s.metric in ('mae', 'rmse', 'mase') else '≥'} "
        f"{s.metric_limit:.4g}"
    )
    lines = [
        f"# inferd tune {s.model}",
        "",
        f"- bounds: p99 ≤ {s.bounds.p99_ms:g} ms; metric: {limit} "
        f"(best source version: {s.metric} {s.best_source:.4g})",
        f"- load: {s.plan.load.describe()}",
        f"- search: {s.plan.describe()}",
        f"- CPU: {s.cpu}",
        f"- wall time: {s.seconds:.0f} s",
    ]
    if s.chosen is None:
        lines.append("- chosen: **none** — no configuration met both bounds; closest first below")
    else:
        c = s.chosen.config
        sends = (
            ""
            if c.threshold is None
            else f" (when confidence < {c.threshold:g}: {_share(s.chosen.share_sent)} sent on)"
        )
        lines.append(
            f"- chosen: **{c.label}**{sends} — {_num(s.chosen.measurement.rate)} req/s with p99 "
            f"{_num(s.chosen.measurement.p99_ms, 3)} ms, {s.metric} {s.chosen.metric_value:.4g}"
        )
        if s.confirmed is not None:
            verdict = "held" if s.confirmed.meets else "did not hold"
            lines.append(
                f"- re-measured at a fixed rate: {_num(s.confirmed.offered)} req/s offered, "
                f"{_num(s.confirmed.throughput)} answered, p99 {_num(s.confirmed.p99_ms, 3)} ms "
                f"({verdict})"
            )
    lines += [f"- {note}" for note in s.notes]
    cascade = any(r.config.threshold is not None for r in rows)
    settings = (
        [("when", "---"), ("sent on", "---:")]
        if cascade
        else [
            ("version", "---:"),
            ("device", "---"),
            ("threads", "---:"),
            ("max batch", "---:"),
            ("delay ms", "---:"),
        ]
    )
    lines += [
        "",
        f"| configuration | {' | '.join(name for name, _ in settings)} | {s.metric} "
        "| req/s at p99 bound | p99 ms | measured | bounds | |",
        f"|---|{'|'.join(align for _, align in settings)}|---:|---:|---:|---|---|---|",
    ]
    for row in rows:
        c, m = row.config, row.measurement
        verdict = (
            "both"
            if row.feasible
            else ", ".join(
                part
                for part, ok in (("metric", row.meets_metric), ("p99", row.meets_latency))
                if not ok
            )
        )
        verdict = "met" if row.feasible else f"misses {verdict}"
        marks = " ".join(
            mark for mark, on in (("**chosen**", row.chosen), ("pareto", row.pareto)) if on
        )
        lines.append(
            f"| {c.label} | {' | '.join(_settings(row))} | {row.metric_value:.4g} | "
            f"{_num(m.rate)} | "
            f"{_num(m.p99_ms, 3)} | rung {row.rung + 1} ({m.trials} levels, {m.seconds:.0f} s) | "
            f"{verdict} | {marks} |"
        )
    lines += [
        "",
        "req/s at p99 bound: the highest load measured whose p99 held the bound (— none did; "
        "the p99 is then the lowest measured at any load tried). A later rung measures longer.",
    ]
    return "\n".join(lines) + "\n"


def as_json(rows: Sequence[Row], summary: Summary) -> dict[str, Any]:
    s = summary

    def measurement(m: Measurement | None) -> dict[str, Any] | None:
        if m is None:
            return None
        return {
            "rate": m.rate,
            "p99_ms": m.p99_ms,
            "throughput": m.throughput,
            "error_rate": m.error_rate,
            "offered": m.offered,
            "levels": m.trials,
            "seconds": round(m.seconds, 3),
        }

    def row(r: Row) -> dict[str, Any]:
        c = r.config
        return {
            "label": c.label,
            "version": c.version,
            "device": c.device,
            "threads": c.threads,
            "max_batch_size": c.max_batch_size,
            "max_delay_ms": c.max_delay_ms,
            "threshold": c.threshold,
            "share_sent": r.share_sent,
            "metric": r.metric_value,
            "measured": measurement(r.measurement),
            "rung": r.rung + 1,
            "meets_metric": r.meets_metric,
            "meets_p99": r.meets_latency,
            "pareto": r.pareto,
            "chosen": r.chosen,
        }

    return {
        "model": s.model,
        "metric": s.metric,
        "metric_limit": s.metric_limit,
        "best_source": s.best_source,
        "p99_ms": s.bounds.p99_ms,
        "load": s.plan.load.describe(),
        "search": s.plan.describe(),
        "adaptive": s.plan.adaptive,
        "rungs": [
            {
                "configurations": count,
                "warmup_s": e.warmup_s,
                "duration_s": e.duration_s,
                "search_steps": e.search_steps,
            }
            for count, e in s.plan.rungs
        ],
        "cpu": s.cpu,
        "seconds": round(s.seconds, 1),
        "chosen": row(s.chosen) if s.chosen else None,
        "confirmed": measurement(s.confirmed),
        "notes": s.notes,
        "configurations": [row(r) for r in rows],
    }


def chart(rows: Sequence[Row], summary: Summary, path: Path) -> None:
    """Two panels sharing the throughput axis: the metric, and the p99 with its bound."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise SpecError(
            "the tune report's chart needs matplotlib: pip install 'inferd[optimize]'"
        ) from None
    s = summary
    figure = Figure(figsize=(11, 5), layout="constrained")
    left, right = figure.subplots(1, 2, sharex=True)
    panels: list[tuple[Any, Callable[[Row], float | None], str]] = [
        (left, _metric_of, s.metric),
        (right, _p99_of, "p99 latency (ms)"),
    ]
    for axes, value_of, label in panels:
        for row in rows:
            y = value_of(row)
            if y is None:
                continue
            x = row.measurement.rate or 0.0
            style = "o" if row.feasible else "x"
            color = "tab:green" if row.feasible else "tab:red"
            axes.plot([x], [y], style, color=color, alpha=0.8)
            axes.annotate(
                row.config.label, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6
            )
        front = sorted(
            (r for r in rows if r.pareto and value_of(r) is not None),
            key=lambda r: r.measurement.rate or 0.0,
        )
        if front:
            axes.plot(
                [r.measurement.rate or 0.0 for r in front],
                [value_of(r) for r in front],
                "-",
                color="tab:blue",
                alpha=0.5,
                label="Pareto front",
            )
        if s.chosen is not None and value_of(s.chosen) is not None:
            axes.plot(
                [s.chosen.measurement.rate or 0.0],
                [value_of(s.chosen)],
                "*",
                markersize=18,
                color="gold",
                markeredgecolor="black",
                label=f"chosen: {s.chosen.config.label}",
            )
        axes.set_xlabel("throughput: req/s sustained within the p99 bound (0: none)")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
    if s.metric_limit is not None:
        left.axhline(s.metric_limit, linestyle="--", color="grey", label="metric bound")
    right.axhline(s.bounds.p99_ms, linestyle="--", color="grey", label="p99 bound")
    right.set_ylim(bottom=0)
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    figure.suptitle(f"inferd tune {s.model} — {s.cpu}", fontsize=8)
    figure.savefig(path, dpi=120)


def _metric_of(row: Row) -> float | None:
    return row.metric_value


def _p99_of(row: Row) -> float | None:
    return row.measurement.p99_ms


def write(folder: Path, rows: Sequence[Row], summary: Summary) -> Path:
    """report.md, report.json and pareto.png in `folder` (made if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.md").write_text(markdown(rows, summary), encoding="utf-8")
        (folder / "report.json").write_text(
            json.dumps(as_json(rows, summary), indent=2) + "\n", encoding="utf-8"
        )
        chart(rows, summary, folder / "pareto.png")
    except OSError as error:
        raise SpecError(f"cannot write the tune report to {folder}: {error}") from None
    return folder
