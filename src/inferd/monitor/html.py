"""`inferd report`'s page: one self-contained HTML file drawn from a report dict
(`report.py`), its charts inline as PNG data URIs, so it can be mailed or archived as is.

Charts (matplotlib, imported here only): latency per stage, cost and energy per 1,000
predictions per version, accuracy over time with its interval, each sensitive attribute's
groups with their intervals, and drift per feature. Every energy figure names its method;
every missing piece is a sentence saying what to do, not an empty chart.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime
from typing import Any

STAGES = ("queue", "preprocess", "model", "postprocess")
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
h1 { margin-bottom: 0; } h2 { border-bottom: 1px solid #ccc; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
td, th { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { color: #8a5a00; } .muted { color: #666; } img { max-width: 100%; }
"""


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="chart" src="data:image/png;base64,{data}">'


def _figure(width: float = 7.0, height: float = 3.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{_number(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _latency(versions: dict[str, Any]) -> str:
    parts = []
    rows = []
    fig, ax = _figure()
    width = 0.8 / max(1, len(versions))
    drawn = False
    for index, (version, figures) in enumerate(versions.items()):
        latency = figures["latency_ms"]
        p50 = [(latency.get(s) or {}).get("p50") for s in STAGES]
        p99 = [(latency.get(s) or {}).get("p99") for s in STAGES]
        for stage in (*STAGES, "total"):
            entry = latency.get(stage) or {}
            rows.append(
                [f"v{version} {stage}", entry.get("p50"), entry.get("p90"), entry.get("p99")]
            )
        if any(v is not None for v in p50):
            drawn = True
            xs = [i + index * width for i in range(len(STAGES))]
            ax.bar(xs, [v or 0 for v in p50], width, label=f"v{version} p50")
            ax.scatter(xs, [v or 0 for v in p99], marker="_", s=200, color="black")
    if drawn:
        ax.set_xticks([i + width * (len(versions) - 1) / 2 for i in range(len(STAGES))], STAGES)
        ax.set_ylabel("ms per item (bar p50, dash p99)")
        ax.legend()
        parts.append(_png(fig))
    else:
        import matplotlib.pyplot as plt

        plt.close(fig)
        parts.append(_note("no per-stage times in the log (rows logged by an older inferd)"))
    parts.append(_table(["version / stage", "p50 ms", "p90 ms", "p99 ms"], rows))
    for version, figures in versions.items():
        slo = figures.get("slo")
        if slo is not None:
            attained = slo["attainment"]
            parts.append(
                f"<p>v{html.escape(version)}: objective p99 ≤ {_number(slo['p99_ms'])} ms, "
                f"met by {slo['met']} of {slo['total']} logged predictions "
                f"({_number(attained * 100 if attained is not None else None, 4)}%)</p>"
            )
    return "".join(parts)


def _costs(versions: dict[str, Any]) -> str:
    names = list(versions)
    cost = [versions[v]["cost"] for v in names]
    energy = [versions[v]["energy"] for v in names]
    currency = next((c["currency"] for c in cost if c.get("currency")), None) or "—"
    parts = []
    if any(e["joules_per_1000"] is not None for e in energy):
        fig, (left, right) = _pair()
        labels = [f"v{v}" for v in names]
        left.bar(labels, [c["per_1000"] or 0 for c in cost], color="#4c72b0")
        left.set_title(f"cost per 1,000 predictions ({currency})")
        right.bar(labels, [e["joules_per_1000"] or 0 for e in energy], color="#55a868")
        methods = sorted({e["method"] for e in energy if e["method"]})
        right.set_title(f"joules per 1,000 (method: {', '.join(methods)})")
        parts.append(_png(fig))
    rows = [
        [
            f"v{v}",
            c["per_1000"],
            c["cpu_ms_per_prediction"],
            c["gpu_ms_per_prediction"],
            e["joules_per_1000"],
            e["method"],
            e["gco2e_per_1000"],
        ]
        for v, c, e in zip(names, cost, energy, strict=True)
    ]
    parts.append(
        _table(
            [
                "version",
                f"cost per 1,000 ({currency})",
                "CPU ms / prediction",
                "GPU ms / prediction",
                "J per 1,000",
                "energy method",
                "gCO2e per 1,000",
            ],
            rows,
        )
    )
    if all(c["per_1000"] is None for c in cost):
        parts.append(
            _note("no cost: start the server with --price-per-hour or --price-per-core-hour")
        )
    return "".join(parts)


def _accuracy(versions: dict[str, Any]) -> str:
    parts = []
    fig, ax = _figure()
    drawn = False
    metric = "metric"
    for version, figures in versions.items():
        live = figures["accuracy"]
        metric = live.get("metric") or metric
        if live["status"] == "ok":
            ci = live.get("ci") or [None, None]
            parts.append(
                f"<p>v{html.escape(version)}: {html.escape(str(live['metric']))} "
                f"<b>{_number(live['value'])}</b> "
                f"(95% interval {_number(ci[0])} to {_number(ci[1])})"
                f" from {live['n']} labelled predictions"
                + (f"; macro F1 {_number(live.get('f1'))}" if live.get("f1") is not None else "")
                + "</p>"
            )
        else:
            parts.append(
                _note(
                    f"v{version}: {live['status']} ({live['n']} labelled, {live['min_labels']} "
                    "needed); send labels to POST /v1/feedback"
                )
            )
        points = [b for b in live.get("over_time", []) if b["value"] is not None]
        if points:
            drawn = True
            mids = [datetime.fromtimestamp((b["start"] + b["end"]) / 2, UTC) for b in points]
            values = [b["value"] for b in points]
            ax.plot(mids, values, marker="o", label=f"v{version}")
            lows = [b["ci"][0] if b["ci"] else b["value"] for b in points]
            highs = [b["ci"][1] if b["ci"] else b["value"] for b in points]
            ax.fill_between(mids, lows, highs, alpha=0.2)
    if drawn:
        ax.set_ylabel(metric)
        ax.legend()
        fig.autofmt_xdate()
        parts.insert(0, _png(fig))
    else:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return "".join(parts)


def _fairness(versions: dict[str, Any]) -> str:
    parts = []
    for version, figures in versions.items():
        section = figures.get("fairness")
        if section is None:
            parts.append(_note(f"v{version}: no fairness: section in model.yaml"))
            continue
        for attribute, result in section["attributes"].items():
            title = f"v{version}, attribute {attribute!r}"
            parts.append(f"<h3>{html.escape(title)}</h3>")
            if result["message"]:
                parts.append(_note(result["message"]))
            groups = result["groups"]
            if not groups:
                continue
            fig, (left, right) = _pair()
            names = list(groups)
            rates = [groups[g].get("selection_rate") for g in names]
            if all(r is not None for r in rates):
                errors = _errors(rates, [groups[g].get("selection_rate_ci") for g in names])
                left.bar(names, rates, yerr=errors, capsize=4, color="#4c72b0")
                left.set_title(f"share {section['positive_label']!s}")
            values = [groups[g].get("metric") for g in names]
            if all(v is not None for v in values):
                errors = _errors(values, [groups[g].get("ci") for g in names])
                right.bar(names, values, yerr=errors, capsize=4, color="#c44e52")
            right.set_title(str(section["metric"]))
            parts.append(_png(fig))
            rows = [
                [
                    g,
                    groups[g]["n"],
                    groups[g]["labelled"],
                    groups[g].get("selection_rate"),
                    groups[g].get("metric"),
                    "yes" if groups[g]["counted"] else "too small",
                ]
                for g in names
            ]
            parts.append(
                _table(
                    [
                        "group",
                        "predictions",
                        "labelled",
                        "selection rate",
                        section["metric"],
                        "counted",
                    ],
                    rows,
                )
            )
            for key, title in (
                ("demographic_parity_difference", "demographic parity difference"),
                ("equalized_odds_difference", "equalized odds difference"),
            ):
                figure = result.get(key)
                if figure is not None:
                    ci = figure.get("ci") or [None, None]
                    parts.append(
                        f"<p>{title}: <b>{_number(figure['value'])}</b> "
                        f"(95% interval {_number(ci[0])} to {_number(ci[1])})</p>"
                    )
    return "".join(parts)


def _pair() -> tuple[Any, tuple[Any, Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.0))
    return fig, (axes[0], axes[1])


def _errors(values: list[Any], intervals: list[Any]) -> list[list[float]]:
    low = [v - ci[0] if ci else 0.0 for v, ci in zip(values, intervals, strict=True)]
    high = [ci[1] - v if ci else 0.0 for v, ci in zip(values, intervals, strict=True)]
    return [[max(0.0, x) for x in low], [max(0.0, x) for x in high]]


def _drift(versions: dict[str, Any]) -> str:
    parts = []
    for version, figures in versions.items():
        section = figures["drift"]
        if section["status"] != "ok":
            parts.append(_note(f"v{version}: {section['status']}: {section['message']}"))
            continue
        features = section["features"]
        names = list(features)
        fig, ax = _figure(7.0, 0.4 * len(names) + 1.2)
        values = [features[n]["psi"] or 0 for n in names]
        colours = ["#c44e52" if v > 0.25 else "#dd8452" if v > 0.1 else "#55a868" for v in values]
        ax.barh(names, values, color=colours)
        ax.axvline(0.1, color="#999", linestyle="--")
        ax.axvline(0.25, color="#555", linestyle="--")
        ax.set_xlabel("PSI (dashed: 0.1 moderate, 0.25 major shift)")
        ax.set_title(f"v{version}: input drift against its reference profile")
        parts.append(_png(fig))
        parts.append(
            _table(
                ["feature", "kind", "n", "PSI", "KS", "KS p-value"],
                [
                    [n, f["kind"], f["n"], f["psi"], f.get("ks"), f.get("p_value")]
                    for n, f in features.items()
                ],
            )
        )
    return "".join(parts)


def render(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    versions = report["versions"]
    window = report["window"]
    title = f"inferd report: {report['model']}"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='muted'>task {html.escape(str(report['task']))}; predictions from "
        f"{_when(window['since'])} to {_when(window['until'])}; made "
        f"{_when(report['generated_at'])}</p>",
    ]
    for note in report["notes"]:
        parts.append(_note(note))
    if not versions:
        parts.append(_note("nothing to draw: no logged predictions in the window"))
    else:
        parts.append(
            _table(
                ["version", "predictions", "labelled"],
                [[f"v{v}", f["predictions"], f["labelled"]] for v, f in versions.items()],
            )
        )
        for heading, draw in (
            ("Latency per stage", _latency),
            ("Cost and energy per 1,000 predictions", _costs),
            ("Accuracy over time", _accuracy),
            ("Fairness by group", _fairness),
            ("Drift per feature", _drift),
        ):
            parts.append(f"<h2>{heading}</h2>")
            parts.append(draw(versions))
    parts.append("</body></html>")
    return "\n".join(parts)


__all__ = ["render"]
