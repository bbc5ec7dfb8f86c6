"""The peers run's text report: machine and settings, one table per model (every peer's req/s
per level, latency, errors, CPU, and its ratio to inferd), the peers' setup, the targets."""

from __future__ import annotations

from typing import Any

from bench.harness.report import table
from bench.peers.targets import fmt_ms, targets_block


def item_time(ms: float) -> str:
    return f"{ms * 1000:.1f} µs" if ms < 0.1 else f"{ms:.2f} ms"


def share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def model_table(
    model: str, records: list[dict[str, Any]], versions: dict[str, str], levels: list[int]
) -> str:
    """One row per peer: req/s at every level, latency at the lowest and highest, errors,
    CPU at the highest, and req/s at the highest as a multiple of inferd's."""
    lo, hi = min(levels), max(levels)

    def level(record: dict[str, Any], c: int) -> dict[str, Any] | None:
        found = record["models"].get(model, {}).get("levels", [])
        return next((lv for lv in found if lv["concurrency"] == c), None)

    inferd = next((r for r in records if r["peer"] == "inferd"), None)
    base = level(inferd, hi) if inferd else None
    headers = [
        "peer",
        "version",
        *(f"c={c} req/s" for c in levels),
        f"p50/p99 c={lo} ms",
        f"p50/p99 c={hi} ms",
        "errors",
        f"server cpu c={hi}",
        f"other cpu c={hi}",
        f"x inferd c={hi}",
    ]
    rows = []
    for record in records:
        head = [record["peer"], versions.get(record["peer"], "?")]
        if model not in record["models"]:
            rows.append([*head, "FAILED", *["-"] * (len(headers) - 3)])
            continue
        low, high = level(record, lo), level(record, hi)
        errors = sum(sum(lv["errors"].values()) for lv in record["models"][model]["levels"])
        rps = [level(record, c) for c in levels]
        rows.append(
            [
                *head,
                *(f"{lv['rps']:,.0f}" if lv else "-" for lv in rps),
                f"{fmt_ms(low['p50_ms'])} / {fmt_ms(low['p99_ms'])}" if low else "-",
                f"{fmt_ms(high['p50_ms'])} / {fmt_ms(high['p99_ms'])}" if high else "-",
                str(errors),
                share(high["server_cpu"]) if high else "-",
                share(high["other_cpu"]) if high else "-",
                f"{high['rps'] / base['rps']:.2f}x" if high and base and base["rps"] else "-",
            ]
        )
    return table(headers, rows)


def report(result: dict[str, Any]) -> str:
    info, settings = result["machine"], result["settings"]
    versions = {p: d["version"] for p, d in result["peers"].items()}
    out = [
        "",
        "=" * 100,
        f"peers, side by side — {info['date']}",
        f"machine: {info['cpu']} — {info['cpus']} CPUs (server and load generator share them); "
        f"load average at start {' '.join(info['loadavg_at_start'])}; Python {info['python']}",
        f"load: {settings['loadgen_label']}; closed loop at c = "
        f"{', '.join(map(str, settings['concurrency']))}; {settings['warmup_s']:g} s warm-up + "
        f"{settings['duration_s']:g} s per level; run took {result['elapsed_s']:.0f} s",
        f"every peer: the same ONNX files, ONNX Runtime {info['onnxruntime']} (peers: their "
        f"own pinned copy) with {settings['threads']} intra-op thread, the same V2 JSON "
        "bodies, access logs off",
        "=" * 100,
    ]
    for name, facts in result["models"].items():
        out += [
            "",
            f"{name}: {facts['description']}",
            f"  raw ORT: {item_time(facts['item_ms'])} per item at batch 1, "
            f"{item_time(facts['batch32_item_ms'])} per item at batch 32; "
            f"request body {facts['body_bytes']:,} bytes",
            "",
            model_table(name, result["records"], versions, settings["concurrency"]),
        ]
    rows = [
        [
            peer,
            data["version"],
            "-"
            if data.get("install_s") is None
            else f"{data['install_s']:.0f} s"
            + (" (earlier run)" if data["install_reused"] else ""),
            "-" if data.get("startup_s") is None else f"{data['startup_s']:.1f} s",
            data["batching"],
        ]
        for peer, data in result["peers"].items()
    ]
    out += ["", table(["peer", "version", "install", "ready after", "batching"], rows)]
    out += targets_block(result)
    out += [f"NOTE: {note}" for note in result["notes"]]
    return "\n".join(out)
