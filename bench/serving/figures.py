"""The serving benchmark's figures, derived from its points and raw ORT measurements, each
judged against its target (PASS/MISS) or shown for information."""

from __future__ import annotations

from bench.harness.points import Point, find_point
from bench.harness.raw_ort import Bracket, RawPoint
from bench.harness.report import Figure, figure

# Targets: (figure key) -> (comparison, threshold)
TARGET_FLOOR_RATIO = 0.70
TARGET_RAW_RATIO = 0.80
TARGET_LATENCY_OVERHEAD_MS = 1.0
TARGET_BATCH_GAIN_RATIO = 0.80
TARGET_COMPUTE_ITEM_MS = 2.0


def derive_figures(
    points: list[Point],
    pipeline_figures: dict[str, float],
    sweep: dict[int, RawPoint],
    best_batch: int,
    best_key: str,
    gapped: RawPoint,
    bracket: Bracket,
) -> list[Figure]:
    """Every figure of the run, in the report's order."""
    figures: list[Figure] = []
    floor64 = find_point(points, "floor (bare ASGI)", 64)
    floor1 = find_point(points, "floor (bare ASGI)", 1)
    for target in ("inferd V2 JSON", "inferd V2 binary"):
        p = find_point(points, target, 64)
        ratio = p.rps / floor64.rps if p and floor64 else None
        figures.append(
            figure("tiny", f"{target} / floor req/s @ c=64", ratio, "x", ">=", TARGET_FLOOR_RATIO)
        )
    for target in ("inferd V2 JSON", "inferd V2 binary"):
        p = find_point(points, target, 1)
        if p and floor1:
            figures.append(
                figure("tiny", f"{target} p50 - floor p50 @ c=1", p.p50_ms - floor1.p50_ms, "ms")
            )
    star64 = find_point(points, "starlette (1 route)", 64)
    if star64 and floor64:
        figures.append(
            figure(
                "tiny", "starlette (1 route) / floor req/s @ c=64", star64.rps / floor64.rps, "x"
            )
        )
    trivial64 = find_point(points, "inferd trivial x+1 (binary)", 64)
    trivial1 = find_point(points, "inferd trivial x+1 (binary)", 1)
    if trivial64 and floor64:
        figures.append(
            figure(
                "tiny",
                "inferd trivial model / floor req/s @ c=64",
                trivial64.rps / floor64.rps,
                "x",
            )
        )
    if trivial1 and floor1:
        figures.append(
            figure(
                "tiny",
                "inferd trivial p50 - floor p50 @ c=1",
                trivial1.p50_ms - floor1.p50_ms,
                "ms",
            )
        )
    figures.append(
        figure(
            "tiny",
            "digits pipeline in-process, batch 32 (1 core, no HTTP)",
            pipeline_figures["batch32_items_per_s"],
            "items/s",
        )
    )
    if floor64:
        figures.append(
            figure(
                "tiny",
                "digits pipeline in-process / floor req/s",
                pipeline_figures["batch32_items_per_s"] / floor64.rps,
                "x",
            )
        )
    figures.append(
        figure(
            "tiny",
            "digits pipeline in-process, batch 1 call time",
            pipeline_figures["batch1_call_p50_ms"],
            "ms",
        )
    )
    if floor64:
        figures.append(
            figure("tiny", "floor req/s @ c=64 (HTTP cost ceiling)", floor64.rps, "req/s")
        )
        if floor64.wrk_cpu > 0:
            figures.append(
                figure(
                    "tiny",
                    "wrk ceiling: floor req/s per wrk CPU-second",
                    floor64.rps / floor64.wrk_cpu,
                    "req/cpu-s",
                )
            )

    # Compute figures compare each served point with raw ORT measured just before and after it
    # (the mean of the two); the sweep picks the best batch size.
    item_ms = bracket.call_ms("batch 1 around c=1")
    figures.append(
        figure(
            "compute",
            "raw ORT single-item time (batch 1 p50)",
            item_ms,
            "ms",
            ">=",
            TARGET_COMPUTE_ITEM_MS,
        )
    )
    figures.append(
        figure(
            "compute",
            "raw ORT single-item time, 0.5 ms idle between calls",
            gapped.call_p50_ms,
            "ms",
        )
    )
    figures.append(
        figure(
            "compute",
            f"raw ORT best throughput (sweep: batch {best_batch})",
            sweep[best_batch].items_per_s,
            "items/s",
        )
    )
    figures.append(
        figure(
            "compute",
            f"raw ORT batch {best_batch} around the c=32 point",
            bracket.items_per_s(best_key),
            "items/s",
        )
    )
    c32 = find_point(points, "inferd compute", 32)
    c1 = find_point(points, "inferd compute", 1)
    if c32:
        figures.append(figure("compute", "inferd compute items/s @ c=32", c32.rps, "items/s"))
        figures.append(
            figure(
                "compute",
                "inferd @ c=32 / raw best items/s",
                c32.rps / bracket.items_per_s(best_key),
                "x",
                ">=",
                TARGET_RAW_RATIO,
            )
        )
    if c1:
        figures.append(figure("compute", "inferd p50 @ c=1", c1.p50_ms, "ms"))
        figures.append(
            figure(
                "compute",
                "inferd p50 @ c=1 - raw single-item time",
                c1.p50_ms - item_ms,
                "ms",
                "<=",
                TARGET_LATENCY_OVERHEAD_MS,
            )
        )
        if c1.model_ms is not None:
            figures.append(
                figure(
                    "compute",
                    "inferd p50 @ c=1 - its own model-stage time",
                    c1.p50_ms - c1.model_ms,
                    "ms",
                )
            )
    figures.append(
        figure("compute", "raw ORT drift before/after a point (max)", bracket.drift(), "%")
    )

    on = find_point(points, "inferd compute", 64)
    off = find_point(points, "inferd compute_nobatch", 64)
    raw_gain = bracket.items_per_s("batch 32 around c=64") / bracket.items_per_s(
        "batch 1 around c=64"
    )
    figures.append(figure("batching", "raw ORT gain batch 32 / batch 1", raw_gain, "x"))
    if on and off:
        served_gain = on.rps / off.rps
        figures.append(figure("batching", "inferd gain batching on / off @ c=64", served_gain, "x"))
        figures.append(
            figure(
                "batching",
                "inferd gain / raw gain",
                served_gain / raw_gain,
                "x",
                ">=",
                TARGET_BATCH_GAIN_RATIO,
            )
        )
    return figures
