"""The serving benchmark's text report: machine and settings, then per section its points,
raw ORT tables and figures, then the PASS/MISS count."""

from __future__ import annotations

from typing import Any

from bench.harness.points import Point, points_table
from bench.harness.report import Figure, figures_table, table


def report(result: dict[str, Any]) -> str:
    points = [Point(**p) for p in result["points"]]
    figures = [Figure(**f) for f in result["figures"]]
    info = result["machine"]
    out = [
        "",
        "=" * 100,
        f"inferd serving benchmark — {info['date']}",
        f"machine: {info['cpu']} — {info['cpus']} CPUs; Python {info['python']}, onnxruntime "
        f"{info['onnxruntime']}, {info['wrk']}",
        f"generator: wrk, 1 thread, keep-alive; {result['settings']['warmup_s']:g} s warm-up + "
        f"{result['settings']['duration_s']:g} s per point; model threads "
        f"{result['settings']['threads']}; run took {result['elapsed_s']:.0f} s",
        "cpu columns: share of ONE CPU used by wrk / the server (all threads) / the server's "
        "event-loop thread / everything else on the machine",
        "=" * 100,
    ]
    titles = {
        "tiny": "1. tiny model (digits) over HTTP vs the bare-ASGI floor",
        "compute": "2. compute-bound model: inferd vs raw in-process ONNX Runtime",
        "batching": "3. dynamic batching on vs off at c=64",
    }
    for section, title in titles.items():
        out += ["", title, ""]
        section_points = [p for p in points if p.section == section]
        if section_points:
            out.append(points_table(section_points))
            out.append("")
        if section == "compute":
            rows = [
                [
                    str(p["batch"]),
                    f"{p['items_per_s']:,.0f}",
                    f"{p['call_p50_ms']:.2f}",
                    f"{p['item_ms']:.2f}",
                ]
                for p in result["raw_ort_sweep"]
            ]
            out.append(table(["raw ORT sweep: batch", "items/s", "ms/call", "ms/item"], rows))
            out.append("")
        if section in ("compute", "batching"):
            rows = [
                [
                    key,
                    f"{pair[0]['items_per_s']:,.0f}",
                    f"{pair[-1]['items_per_s']:,.0f}",
                    f"{pair[0]['call_p50_ms']:.2f}",
                    f"{pair[-1]['call_p50_ms']:.2f}",
                ]
                for key, pair in result["raw_ort_around_points"].items()
                if ("c=64" in key) == (section == "batching")
            ]
            out.append(
                table(
                    [
                        "raw ORT around the points",
                        "items/s before",
                        "after",
                        "ms/call before",
                        "after",
                    ],
                    rows,
                )
            )
            out.append("")
        out.append(figures_table([f for f in figures if f.section == section]))
    verdicts = [f.verdict for f in figures if f.verdict]
    out += [
        "",
        f"targets: {verdicts.count('PASS')} PASS, {verdicts.count('MISS')} MISS",
    ]
    if result["background_cpu_max"] > 0.25:
        out.append(
            f"WARNING: other processes used up to {result['background_cpu_max']:.0%} of a CPU "
            "during the run; the figures are disturbed. Rerun on a quiet machine."
        )
    return "\n".join(out)
