"""inferd optimize benchmark: every variant against its source, measured in the same run.

    .venv/bin/python -m bench.optimize                    # every part
    .venv/bin/python -m bench.optimize --only quantize,prune

Parts (one module each in bench/optimize/, each `run(work) -> list[Figure]`, working on its
own copy of the models under a temporary folder, so model_repository/ is never changed):

- quantize: dynamic int8 MiniLM support-intent against fp32 at batch 8, and its accuracy.
- distill: the distilled student against the MiniLM teacher and the same student trained on
  labels alone.
- prune: the pruned digits CNN against the original at the same batch.
- cascade: student → teacher against the teacher alone.
- tune: `inferd tune digits --p99-ms 5` wall time, and its choice re-checked by `inferd bench`.

Prints a table of every figure with its target and PASS/MISS (misses included), the CPU it ran
on, and writes the same as JSON to bench/results/optimize-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench.harness.report import Figure, figures_table, result_path, write_json
from inferd.hardware import cpu

PARTS = ("quantize", "distill", "prune", "cascade", "tune")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated parts of: {', '.join(PARTS)}")
    parser.add_argument("--out", type=Path, help="JSON result (default bench/results/...)")
    args = parser.parse_args()
    parts = args.only.split(",") if args.only else list(PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    print(f"CPU: {cpu().describe()}")
    figures: list[Figure] = []
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="inferd-bench-optimize-") as tmp:
        for part in parts:
            started = time.perf_counter()
            module = importlib.import_module(f"bench.optimize.{part}")
            work = Path(tmp) / part
            work.mkdir()
            print(f"\n== {part} ==", flush=True)
            figures.extend(module.run(work))
            seconds[part] = time.perf_counter() - started
    print()
    print(figures_table(figures))
    print(f"\nCPU: {cpu().describe()}")
    out = args.out or result_path("optimize")
    write_json(
        {"cpu": cpu().describe(), "seconds": seconds, "figures": [asdict(f) for f in figures]},
        out,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
