"""A run's result for people (a markdown table), for programs (JSON) and as a picture (PNG)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson

from inferd_bench.config import BenchError
from inferd_bench.result import BenchResult, Latency, Point


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"


def _errors(point: Point) -> str:
    if not point.errors:
        return "0"
    return ", ".join(f"{kind} x{count}" for kind, count in point.errors.items())


def _pick(latency: Latency | None, name: str) -> float | None:
    return None if latency is None else float(getattr(latency, name))


def markdown(result: BenchResult) -> str:
    """The headline, what was run, one row per load level, and any notes."""
    streaming = any(p.ttft_ms is not None for p in result.points)
    scheduled = any(p.send_lag_ms is not None for p in result.points)
    columns = ["load", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"]
    if streaming:
        columns += ["TTFT p50 ms", "TTFT p99 ms", "ITL p50 ms", "tokens/s"]
    if scheduled:
        columns += ["send lag p99 ms"]
    columns += ["generator CPU"]
    lines = [
        f"## inferd bench: {result.scenario}, {result.model} at {result.url}",
        "",
        f"**{result.headline}**",
        "",
        f"{result.source}; {result.workers} worker(s), "
        f"{result.machine.get('loop', '?')} loop, {result.machine.get('cpus', '?')} CPUs; "
        f"{result.started_at}",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|",
    ]
    for point in result.points:
        lat = point.latency_ms
        row = [
            point.label,
            f"{point.throughput:,.1f}",
            _num(_pick(lat, "p50")),
            _num(_pick(lat, "p90")),
            _num(_pick(lat, "p99")),
            _num(_pick(lat, "max")),
            _errors(point),
        ]
        if streaming:
            row += [
                _num(_pick(point.ttft_ms, "p50")),
                _num(_pick(point.ttft_ms, "p99")),
                _num(_pick(point.itl_ms, "p50")),
                _num(point.tokens_per_s, 4),
            ]
        if scheduled:
            row += [_num(_pick(point.send_lag_ms, "p99"))]
        cpu = f"{point.generator_cpu:.0%}" + (" (busy)" if point.saturated else "")
        lines.append("| " + " | ".join([*row, cpu]) + " |")
    if result.search:
        lines += [
            "",
            "| trial | rate/s | p99 ms | errors | meets the bound |",
            "|---|---:|---:|---:|---|",
        ]
        for number, step in enumerate(result.search, start=1):
            verdict = "yes" if step.passed else "no"
            lines.append(
                f"| {number} ({step.phase}) | {step.rate:g} | {_num(step.p99_ms)} | "
                f"{step.error_rate:.2%} | {verdict} |"
            )
    samples = {k: v for p in result.points for k, v in p.error_samples.items()}
    if samples:
        lines += ["", "First answer of each error:"]
        lines += [f"- `{kind}`: {text.strip()[:200]}" for kind, text in sorted(samples.items())]
    if result.notes:
        lines += ["", *(f"- {note}" for note in result.notes)]
    lines.append(
        "\nLatency: milliseconds, of the 2xx answers; server scenario from the scheduled send "
        "time. Generator CPU: CPU-seconds the generator used per second of the window."
    )
    return "\n".join(lines) + "\n"


def as_dict(result: BenchResult) -> dict[str, Any]:
    doc = dataclasses.asdict(result)
    for point, raw in zip(result.points, doc["points"], strict=True):
        raw["error_rate"] = round(point.error_rate, 6)
    return doc


def to_json(result: BenchResult) -> bytes:
    return orjson.dumps(as_dict(result), option=orjson.OPT_INDENT_2) + b"\n"


def plot(result: BenchResult, path: Path) -> None:
    """p50/p90/p99 latency against the throughput each load level achieved."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise BenchError(
            "--plot needs matplotlib, an optional extra: pip install 'inferd[plot]'"
        ) from None
    points = [
        p for p in result.points if p.latency_ms is not None and not p.label.startswith("probe")
    ]
    if result.scenario == "server":
        points.sort(key=lambda p: p.target_rate or 0.0)
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    axes = figure.subplots()
    xs = [p.throughput for p in points]
    for name, style in (("p50", "o-"), ("p90", "s-"), ("p99", "^-")):
        axes.plot(xs, [_pick(p.latency_ms, name) or 0.0 for p in points], style, label=name)
    for p in points:
        if p.concurrency is not None and result.scenario == "sweep":
            axes.annotate(
                p.label,
                (p.throughput, _pick(p.latency_ms, "p99") or 0.0),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
    bound = result.settings.get("p99_bound_ms")
    if bound:
        axes.axhline(bound, linestyle="--", color="grey", label=f"p99 bound {bound:g} ms")
    axes.set_xlabel("achieved throughput (req/s)")
    axes.set_ylabel("latency (ms)")
    axes.set_ylim(bottom=0)
    axes.set_title(f"{result.model}: {result.scenario} ({result.protocol})")
    axes.grid(alpha=0.3)
    axes.legend()
    try:
        figure.savefig(path, dpi=120)
    except OSError as error:
        raise BenchError(f"cannot write {path}: {error}") from None
