"""inferd serving benchmark: inferd over HTTP against baselines measured in the same run.

    .venv/bin/python -m bench.serve            # full run, ~4-5 minutes
    .venv/bin/python -m bench.serve --quick    # ~1.5 minutes, noisier

One load generator (wrk, one thread) drives every target, so the ratios are fair:

1. tiny model (`digits`): inferd V2 JSON and V2 binary vs a bare ASGI app on the same
   uvicorn stack (the HTTP floor), at concurrency 1, 8, 32, 64.
2. a compute-bound CNN built here: raw in-process ONNX Runtime vs inferd at c=32 (throughput)
   and c=1 (latency).
3. dynamic batching on vs off at c=64, against raw ORT's own batch-1 → batch-32 gain.

Prints a table with every figure, its target and PASS/MISS, and writes the same as JSON to
bench/results/serve-<timestamp>.json. See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import BENCH
from bench.harness.cpu import add_wait_quiet_option, cpu_model
from bench.harness.models import COMPUTE_SHAPE
from bench.harness.points import Runner
from bench.harness.raw_ort import Bracket, log_raw, measure_raw, ort_session, raw_sweep
from bench.harness.report import result_path, write_json
from bench.harness.servers import Server, free_port, inferd_serve, run_stopping_servers
from bench.harness.wrk import check_wrk, wrk_version
from bench.serving.figures import derive_figures
from bench.serving.report import report
from bench.serving.workload import (
    COMPUTE,
    DIGITS,
    DIGITS_SAMPLE,
    NOBATCH,
    TRIVIAL,
    build_repository,
    check_answers,
    check_example,
    check_infer,
    digits_pipeline,
    make_bodies,
)

TINY_CONCURRENCY = (1, 8, 32, 64)


def machine() -> dict[str, Any]:
    """What the figures were measured on, printed first and kept in the JSON."""
    import onnxruntime

    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "wrk": wrk_version().strip(),
        "kernel": platform.release(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The three sections in order, every server stopped at the end; the result as plain data."""
    check_wrk()
    check_example()
    info = machine()
    settings = {
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "raw_seconds": args.raw_seconds,
        "threads": args.threads,
        "quick": args.quick,
        "generator": "wrk -t1 --latency, keep-alive, one fixed body per target",
    }
    print(f"inferd serving benchmark  {info['date']}")
    print(
        f"machine: {info['cpu']}, {info['cpus']} CPUs ({info['cpus_usable']} usable), "
        f"load average {' '.join(info['loadavg_at_start'])}; Python {info['python']}, "
        f"onnxruntime {info['onnxruntime']}, {info['wrk']}"
    )
    print(
        f"each point: {args.warmup:g} s warm-up, then {args.duration:g} s measured; "
        f"model threads {args.threads}\n",
        flush=True,
    )
    started = time.monotonic()

    with (
        tempfile.TemporaryDirectory(prefix="inferd-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        repo = workdir / "repo"
        model_path = build_repository(repo, args.threads)

        compute_x = np.random.default_rng(3).standard_normal((1, *COMPUTE_SHAPE)).astype(np.float32)
        bodies = make_bodies(workdir, DIGITS_SAMPLE.read_bytes(), compute_x)
        session = ort_session(model_path, args.threads)
        expected_logits = session.run(None, {"x": compute_x})[0]
        runner = Runner(workdir, args.duration, args.warmup, args.wait_quiet)

        print("1. tiny model: digits pipeline in-process (no HTTP, one thread)", flush=True)
        pipeline_figures = digits_pipeline(
            repo / "digits", bodies["digits_json"].data, args.raw_seconds * 2
        )
        print(
            "  batch 1: {batch1_call_p50_ms:.2f} ms/call; batch 32: {batch32_items_per_s:,.0f} "
            "items/s".format(**pipeline_figures),
            flush=True,
        )

        # -- 1. the HTTP floor ------------------------------------------------------------------
        floor_port = free_port()
        floor = Server(
            "floor",
            [sys.executable, str(BENCH / "floor_app.py"), "--port", str(floor_port)],
            floor_port,
            "/",
            workdir / "floor.log",
        )
        stack.callback(floor.stop)
        print("1. tiny model: HTTP floor (bare ASGI app, same uvicorn stack)", flush=True)
        floor.start()
        check_infer(floor, "/", bodies["digits_json"])
        for c in TINY_CONCURRENCY:
            runner.point("tiny", "floor (bare ASGI)", floor, "/", bodies["digits_json"], c)
        floor.stop()

        star_port = free_port()
        star = Server(
            "starlette",
            [sys.executable, str(BENCH / "floor_app.py"), "--port", str(star_port), "--starlette"],
            star_port,
            "/",
            workdir / "starlette.log",
        )
        stack.callback(star.stop)
        print("1. tiny model: the same answer through Starlette (framework cost)", flush=True)
        star.start()
        check_infer(star, "/", bodies["digits_json"])
        for c in (1, 64):
            runner.point("tiny", "starlette (1 route)", star, "/", bodies["digits_json"], c)
        star.stop()

        # -- inferd -----------------------------------------------------------------------------
        inferd = inferd_serve("inferd", repo, workdir / "inferd.log")
        stack.callback(inferd.stop)
        inferd.start()
        check_answers(inferd, bodies, expected_logits)

        print("1. tiny model: inferd", flush=True)
        for target, body in (
            ("inferd V2 JSON", "digits_json"),
            ("inferd V2 binary", "digits_binary"),
        ):
            for c in TINY_CONCURRENCY:
                runner.point("tiny", target, inferd, DIGITS, bodies[body], c, model="digits")

        for c in (1, 64):
            runner.point(
                "tiny",
                "inferd trivial x+1 (binary)",
                inferd,
                TRIVIAL,
                bodies["trivial_binary"],
                c,
                model="trivial",
            )

        # -- 2. compute-bound: raw ORT, then served ------------------------------------------
        print("2. compute-bound model: raw ONNX Runtime in-process (inferd idle)", flush=True)
        sweep = raw_sweep(session, args.raw_seconds)
        best_batch = max(sweep, key=lambda b: sweep[b].items_per_s)
        gapped = measure_raw(session, 1, args.raw_seconds, np.random.default_rng(5), gap_s=5e-4)
        log_raw("with 0.5 ms gaps", gapped)
        bracket = Bracket(session, args.raw_seconds)
        body = bodies["compute_binary"]

        print("2. compute-bound model: inferd, each point between two raw measurements", flush=True)
        bracket.measure("batch 1 around c=1", 1)
        runner.point("compute", "inferd compute", inferd, COMPUTE, body, 1, model="compute")
        bracket.measure("batch 1 around c=1", 1)
        best_key = f"batch {best_batch} around c=32"
        bracket.measure(best_key, best_batch)
        runner.point("compute", "inferd compute", inferd, COMPUTE, body, 32, model="compute")
        bracket.measure(best_key, best_batch)

        # -- 3. batching on vs off -------------------------------------------------------------
        print("3. batching on vs off at c=64, between two raw measurements", flush=True)
        bracket.measure("batch 1 around c=64", 1)
        bracket.measure("batch 32 around c=64", 32)
        runner.point("batching", "inferd compute", inferd, COMPUTE, body, 64, model="compute")
        runner.point(
            "batching",
            "inferd compute_nobatch",
            inferd,
            NOBATCH,
            body,
            64,
            model="compute_nobatch",
        )
        bracket.measure("batch 1 around c=64", 1)
        bracket.measure("batch 32 around c=64", 32)
        inferd.stop()
        del session

    points = runner.points
    figures = derive_figures(points, pipeline_figures, sweep, best_batch, best_key, gapped, bracket)

    busy = [p.other_cpu for p in points]
    result = {
        "machine": info,
        "settings": settings,
        "elapsed_s": round(time.monotonic() - started, 1),
        "points": [asdict(p) for p in points],
        "raw_ort_sweep": [asdict(p) for p in sweep.values()],
        "raw_ort_gapped": asdict(gapped),
        "raw_ort_around_points": {
            key: [asdict(p) for p in pair] for key, pair in bracket.pairs.items()
        },
        "digits_pipeline_in_process": pipeline_figures,
        "figures": [asdict(f) for f in figures],
        "background_cpu_max": max(busy) if busy else 0.0,
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description="inferd serving benchmark (see bench/README.md)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="short points (2 s + 1 s warm-up): ~1.5 min, noisier"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="measured seconds per point (default 8, quick 2)",
    )
    parser.add_argument(
        "--warmup", type=float, default=None, help="warm-up seconds per point (default 2, quick 1)"
    )
    parser.add_argument(
        "--raw-seconds",
        type=float,
        default=None,
        help="seconds per raw ORT batch size (default 2, quick 0.7)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads of the compute model, raw and served alike",
    )
    add_wait_quiet_option(parser, "point")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    args.duration = args.duration or (2.0 if args.quick else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.raw_seconds = args.raw_seconds or (0.7 if args.quick else 2.0)

    result = run_stopping_servers(lambda: run(args))
    if isinstance(result, int):
        return result
    print(report(result))
    out = args.out or result_path("serve")
    write_json(result, out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
