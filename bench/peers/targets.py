"""The issue's four targets for the peers run, judged from one run's figures alone.

- tiny c=64: inferd req/s >= the bare-ASGI floor's (`floor`, measured in the same run);
- tiny c=1: inferd p50 <= 0.5 ms, and the lowest of every serving peer;
- cnn c=32: inferd items/s >= 85 % of raw in-process ONNX Runtime's best (RawOrt, bracketing
  inferd's cnn levels), and >= every serving peer;
- c=64: inferd p99 <= 3x its p50 (no long tail from queueing or GC).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.harness.raw_ort import Bracket, ort_session
from bench.harness.report import judge
from bench.peers.workload import MODELS, Workload

REFERENCES = ("floor",)  # a yardstick, not a serving peer: left out of "every peer"
RAW_BATCHES = (1, 8, 16, 32)  # raw ORT on the cnn, up to --max-batch (and at it)

# The targets, checked in every run (see bench/README.md).
TARGET_FLOOR_RATIO = 1.00  # tiny c=64: inferd req/s / the bare-ASGI floor's
TARGET_C1_P50_MS = 0.5  # tiny c=1: inferd p50, and the lowest of every peer
TARGET_RAW_RATIO = 0.85  # cnn c=32: inferd items/s / raw ORT's best items/s
TARGET_TAIL_RATIO = 3.0  # c=64: inferd p99 / p50


class RawOrt:
    """Raw ONNX Runtime items/s on one model at several batch sizes, in this process, with
    the session options and thread count every peer uses; measured right before and right
    after inferd's levels on that model (the machine's speed drifts 10-30 % over minutes), each
    batch size's figure the mean of the two (bench.harness.raw_ort.Bracket)."""

    def __init__(self, workload: Workload, threads: int, batches: list[int], seconds: float):
        self.model = workload.name
        self.threads = threads
        self.batches = batches
        self.seconds = seconds
        self.bracket = Bracket(ort_session(workload.onnx, threads), seconds)

    def key(self, batch: int) -> str:
        return f"{self.model} around inferd b{batch}"  # log_raw prints it, then the batch

    def measure(self, when: str) -> None:
        print(f"  raw ORT {self.model} {when}:", flush=True)
        for batch in self.batches:
            self.bracket.measure(self.key(batch), batch)

    def items_per_s(self, batch: int) -> float | None:
        return (
            self.bracket.items_per_s(self.key(batch))
            if self.key(batch) in self.bracket.pairs
            else None
        )

    def best(self) -> tuple[int, float] | None:
        """The best batch size and its items/s (mean of before and after)."""
        figures = [(b, v) for b in self.batches if (v := self.items_per_s(b)) is not None]
        return max(figures, key=lambda bv: bv[1]) if figures else None

    def bracketed(self) -> bool:
        return all(len(self.bracket.pairs.get(self.key(b), [])) == 2 for b in self.batches)

    def record(self) -> dict[str, Any]:
        best = self.best()
        return {
            "model": self.model,
            "threads": self.threads,
            "seconds_per_point": self.seconds,
            "batches": {
                b: {
                    "items_per_s": self.items_per_s(b),
                    "points": [asdict(pt) for pt in self.bracket.pairs.get(self.key(b), [])],
                }
                for b in self.batches
            },
            "best_batch": best[0] if best else None,
            "best_items_per_s": best[1] if best else None,
            "bracketed": self.bracketed(),
            "drift": self.bracket.drift(),
        }


def targets(
    records: list[dict[str, Any]], settings: dict[str, Any], raw: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured figure, bound and PASS/MISS, from this run
    alone; "not measured" where the peers, models or levels it needs were not run."""
    by_peer = {r["peer"]: r for r in records}
    serving = [p for p in settings["peers"] if p != "inferd" and p not in REFERENCES]
    out: list[dict[str, Any]] = []

    def level(peer: str, model: str, c: int) -> dict[str, Any] | None:
        record = by_peer.get(peer)
        found = record["models"].get(model, {}).get("levels", []) if record else []
        return next((lv for lv in found if lv["concurrency"] == c), None)

    def missing(peer: str, model: str, c: int) -> str | None:
        """Why peer's figure at model, c=c was not measured; None when it was."""
        if model not in settings["models"]:
            return f"{model} not in --models"
        if c not in settings["concurrency"]:
            return f"c={c} not in --concurrency"
        if peer not in by_peer:
            return f"{peer} not in --peers"
        if level(peer, model, c) is None:
            return f"{peer} failed"
        return None

    def errors(lv: dict[str, Any]) -> int:
        return sum(lv["errors"].values())

    def add(
        name: str,
        text: str,
        value: float | None = None,
        op: str | None = None,
        bound: float | None = None,
        failed: int = 0,
        note: str = "",
    ) -> None:
        if value is None or op is None or bound is None:
            verdict = "not measured"
            line = f"{name}: not measured ({text})"
        else:
            verdict = "MISS" if failed else judge(value, op, bound)
            line = f"{name}: {text}" + (f" with {failed:,} errors" if failed else "")
            line += f" {verdict}{note}"
        out.append(
            {
                "target": name,
                "value": value,
                "op": op,
                "bound": bound,
                "verdict": verdict,
                "text": line,
            }
        )

    # 1. tiny c=64: inferd req/s >= the bare-ASGI floor's
    name = "1. tiny c=64 vs the bare-ASGI floor"
    reason = missing("inferd", "tiny", 64) or missing("floor", "tiny", 64)
    a, b = level("inferd", "tiny", 64), level("floor", "tiny", 64)
    if reason or not a or not b or not b["rps"]:
        add(name, reason or "the floor answered nothing")
    else:
        ratio = a["rps"] / b["rps"]
        add(
            name,
            f"inferd {a['rps']:,.0f} req/s vs floor {b['rps']:,.0f} req/s = "
            f"{ratio:.2f}x (≥ {TARGET_FLOOR_RATIO:.2f}x)",
            ratio,
            ">=",
            TARGET_FLOOR_RATIO,
            errors(a),
        )

    # 2. tiny c=1 p50 <= 0.5 ms, and the lowest of every peer
    name = "2a. tiny c=1 p50"
    reason = missing("inferd", "tiny", 1)
    mine = level("inferd", "tiny", 1)
    if reason or not mine or mine["p50_ms"] is None:
        add(name, reason or "inferd had no answers")
    else:
        add(
            name,
            f"inferd {mine['p50_ms']:.2f} ms (≤ {TARGET_C1_P50_MS:.2f} ms)",
            mine["p50_ms"],
            "<=",
            TARGET_C1_P50_MS,
            errors(mine),
        )
    name = "2b. tiny c=1 p50, lowest of the peers"
    others = {p: lv for p in serving if (lv := level(p, "tiny", 1)) and lv["p50_ms"] is not None}
    unmeasured = [p for p in serving if p not in others]  # failed (or answered nothing)
    floor = level("floor", "tiny", 1)
    aside = (
        f"; the floor, a yardstick: {floor['p50_ms']:.2f} ms" if floor and floor["p50_ms"] else ""
    )
    aside += f"; failed, not compared: {', '.join(unmeasured)}" if unmeasured else ""
    if reason or not mine or mine["p50_ms"] is None:
        add(name, reason or "inferd had no answers")
    elif not others:
        add(
            name, f"failed: {', '.join(unmeasured)}" if unmeasured else "no serving peer in --peers"
        )
    else:
        best = min(others, key=lambda p: others[p]["p50_ms"])
        ratio = mine["p50_ms"] / others[best]["p50_ms"]
        add(
            name,
            f"inferd {mine['p50_ms']:.2f} ms vs lowest peer {best} {others[best]['p50_ms']:.2f} "
            f"ms (of {len(others)}) = {ratio:.2f}x (≤ 1.00x)",
            ratio,
            "<=",
            1.0,
            errors(mine),
            aside,
        )

    # 3. cnn c=32: inferd items/s >= 85 % of raw ORT's best, and >= every peer's
    name = "3a. cnn c=32 vs raw ORT"
    reason = missing("inferd", "cnn", 32)
    mine = level("inferd", "cnn", 32)
    if reason or not mine:
        add(name, reason or "inferd failed")
    elif not raw or raw.get("best_items_per_s") is None:
        add(name, "raw ORT was not measured")
    else:
        best_raw = raw["best_items_per_s"]
        ratio = mine["rps"] / best_raw
        how = "mean of before and after" if raw["bracketed"] else "measured before only"
        add(
            name,
            f"inferd {mine['rps']:,.0f} items/s vs raw ORT {best_raw:,.0f} items/s (batch "
            f"{raw['best_batch']}) = {ratio:.2f}x (≥ {TARGET_RAW_RATIO:.2f}x)",
            ratio,
            ">=",
            TARGET_RAW_RATIO,
            errors(mine),
            f"; raw ORT: best of batch {', '.join(map(str, raw['batches']))}, "
            f"{raw['threads']} thread, {how} inferd's levels, drift {raw['drift']:.0%}",
        )
    name = "3b. cnn c=32 vs every peer"
    others = {p: lv for p in serving if (lv := level(p, "cnn", 32))}
    unmeasured = [p for p in serving if p not in others]  # failed
    if reason or not mine:
        add(name, reason or "inferd failed")
    elif not others:
        add(
            name, f"failed: {', '.join(unmeasured)}" if unmeasured else "no serving peer in --peers"
        )
    else:
        best = max(others, key=lambda p: others[p]["rps"])
        ratio = mine["rps"] / others[best]["rps"] if others[best]["rps"] else float("inf")
        add(
            name,
            f"inferd {mine['rps']:,.0f} items/s vs best peer {best} {others[best]['rps']:,.0f} "
            f"items/s (of {len(others)}) = {ratio:.2f}x (≥ 1.00x)",
            ratio,
            ">=",
            1.0,
            errors(mine),
            f"; failed, not compared: {', '.join(unmeasured)}" if unmeasured else "",
        )

    # 4. c=64: inferd p99 <= 3x p50, on every model
    for model in MODELS:
        name = f"4. {model} c=64 tail"
        reason = missing("inferd", model, 64)
        mine = level("inferd", model, 64)
        if reason or not mine or not mine["p50_ms"] or mine["p99_ms"] is None:
            add(name, reason or "inferd had no answers")
            continue
        ratio = mine["p99_ms"] / mine["p50_ms"]
        add(
            name,
            f"inferd p99 {fmt_ms(mine['p99_ms'])} ms / p50 {fmt_ms(mine['p50_ms'])} ms = "
            f"{ratio:.2f}x (≤ {TARGET_TAIL_RATIO:.2f}x)",
            ratio,
            "<=",
            TARGET_TAIL_RATIO,
            errors(mine),
        )
    return out


def targets_block(result: dict[str, Any]) -> list[str]:
    out = ["", "targets (every figure from this run):"]
    raw = result.get("raw_ort")
    if raw:
        figures = []
        for batch, data in raw["batches"].items():
            points = data["points"]
            around = " / ".join(f"{p['items_per_s']:,.0f}" for p in points)
            value = data["items_per_s"]
            figures.append(
                f"batch {batch} {value:,.0f}" + (f" ({around})" if len(points) > 1 else "")
            )
        out.append(
            f"  raw ORT {raw['model']} in this process ({raw['threads']} intra-op thread), items/s "
            f"before / after inferd's {raw['model']} levels, mean: {'; '.join(figures)}; "
            f"drift {raw['drift']:.0%}"
        )
    out += [f"  {t['text']}" for t in result["targets"]]
    counts = {v: sum(t["verdict"] == v for t in result["targets"]) for v in ("PASS", "MISS")}
    unmeasured = sum(t["verdict"] == "not measured" for t in result["targets"])
    out.append(f"  {counts['PASS']} PASS, {counts['MISS']} MISS, {unmeasured} not measured")
    return out


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"
