"""What monitoring costs: the compute-bound CNN served with the four costs accounted and
without, side by side in one run.

    .venv/bin/python -m bench.monitor            # about 3 minutes
    .venv/bin/python -m bench.monitor --quick    # about 1.5 minutes, noisier

Two `inferd serve` processes run the same CNN (bench/harness/models.py) from the same ONNX
file, both with a store:

- **on**: the model logs every prediction (`prediction_log`, sample rate 1), has a latency
  objective (`slo`), and the server accounts CPU time, energy and cost per prediction
  (`--price-per-hour`) and runs its monitor loop (every 60 s, the default: latency, cost,
  energy, accuracy, fairness and drift figures and alert thresholds, built from the store);
- **off**: the same model without a prediction log or objective, served with `--no-monitor`.

Tracing stays off in both (it is opt-in, `--otel-exporter`). Five pairs of fresh server
processes (two identical servers differ by up to ~0.5 ms at c=1 on a VM, by where each
lands), each measured at c=64 and c=1 in alternating order; each on point is compared with
its pair's off point, and the figures are the medians of those paired comparisons, with
their range. Targets (issue 15): monitoring keeps ≥ 0.95x the req/s
at c=64 and adds ≤ 0.05 ms to the c=1 p50.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness.models import COMPUTE_SHAPE, build_compute_model
from bench.harness.points import Point, Runner
from bench.harness.report import Figure, figure, figures_table, result_path, write_json
from bench.harness.servers import Server, free_port, run_stopping_servers
from bench.harness.wrk import check_wrk
from bench.serving.workload import COMPUTE, check_infer, make_bodies
from inferd.hardware import cpu

REPEATS = 5  # on/off pairs per concurrency: this VM's CNN p50 drifts by ±15% between points


def write_model(model_dir: Path, onnx_file: Path, monitored: bool, sample_rate: float) -> None:
    """The CNN's model.yaml, with the monitoring sections when `monitored`."""
    version = model_dir / "1"
    version.mkdir(parents=True)
    shutil.copyfile(onnx_file, version / "model.onnx")
    text = "name: compute\nbatching: {max_batch_size: 32, max_delay_ms: 0}\nruntime: {threads: 1}\n"
    if monitored:
        text += (
            f"prediction_log: {{sample_rate: {sample_rate}, inputs: none}}\nslo: {{p99_ms: 100}}\n"
        )
    model_dir.joinpath("model.yaml").write_text(text)


def server(name: str, repo: Path, data_dir: Path, log: Path, extra: list[str]) -> Server:
    port = free_port()
    inferd = Path(sys.executable).with_name("inferd")
    argv = [str(inferd if inferd.exists() else "inferd"), "serve", str(repo)]
    argv += ["--port", str(port), "--data-dir", str(data_dir), *extra]
    return Server(name, argv, port, "/v2/health/ready", log)


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_wrk()
    with (
        tempfile.TemporaryDirectory(prefix="inferd-bench-monitor-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        onnx_file = build_compute_model(work / "cnn.onnx")
        for side in ("on", "off"):
            monitored = side == "on" and not args.same
            write_model(work / side / "compute", onnx_file, monitored, args.sample_rate)
        x = np.random.default_rng(3).standard_normal((1, *COMPUTE_SHAPE)).astype(np.float32)
        body = make_bodies(work, b"", x)["compute_binary"]
        runner = Runner(work, args.duration, args.warmup)
        points: dict[tuple[str, int], list[Point]] = {}
        logged = ""
        for pair in range(REPEATS):
            # Fresh processes each pair: two identical servers differ by up to ~0.5 ms at c=1
            # on this VM (where each lands), which would read as monitoring's cost.
            servers = {
                "on": server(
                    "inferd monitored",
                    work / "on",
                    work / "data-on",
                    work / f"on-{pair}.log",
                    ["--no-monitor"]
                    if args.same
                    else [
                        "--price-per-hour",
                        "0.10",
                        "--monitor-interval",
                        str(args.monitor_interval),
                    ],
                ),
                "off": server(
                    "inferd unmonitored",
                    work / "off",
                    work / "data-off",
                    work / f"off-{pair}.log",
                    ["--no-monitor"],
                ),
            }
            for srv in servers.values():
                stack.callback(srv.stop)
                srv.start()
                check_infer(srv, COMPUTE, body)
            order = ("on", "off") if pair % 2 == 0 else ("off", "on")
            for concurrency in (64, 1):
                for side in order:
                    point = runner.point(
                        "monitor",
                        f"monitoring {side}",
                        servers[side],
                        COMPUTE,
                        body,
                        concurrency,
                        model="compute",
                    )
                    points.setdefault((side, concurrency), []).append(point)
            logged += servers["on"].log.read_text(errors="replace")
            for srv in servers.values():
                srv.stop()
    figures = derive(points)
    return {
        "cpu": cpu().model,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeats": REPEATS,
            "sample_rate": args.sample_rate,
            "monitor_interval_s": args.monitor_interval,
            "same": args.same,
        },
        "points": [asdict(p) for p in runner.points],
        "figures": [asdict(f) for f in figures],
        "server_log_errors": [line for line in logged.splitlines() if " ERROR " in line],
    }


def derive(points: dict[tuple[str, int], list[Point]]) -> list[Figure]:
    """Each on point is compared with its pair's off point; the median of those paired
    comparisons is the figure (the machine's drift falls on both sides)."""

    def pairs(concurrency: int) -> list[tuple[Point, Point]]:
        return list(zip(points[("on", concurrency)], points[("off", concurrency)], strict=True))

    ratios = [on.rps / off.rps for on, off in pairs(64)]
    added = [on.p50_ms - off.p50_ms for on, off in pairs(1)]
    on_rps = statistics.median(p.rps for p in points[("on", 64)])
    off_rps = statistics.median(p.rps for p in points[("off", 64)])
    on_p50 = statistics.median(p.p50_ms for p in points[("on", 1)])
    off_p50 = statistics.median(p.p50_ms for p in points[("off", 1)])
    return [
        figure("monitor", "c=64 req/s, monitoring on (median)", on_rps, "req/s"),
        figure("monitor", "c=64 req/s, monitoring off (median)", off_rps, "req/s"),
        figure(
            "monitor",
            "c=64 req/s on / off, median of pairs",
            statistics.median(ratios),
            "x",
            ">=",
            0.95,
        ),
        figure("monitor", "  pairs' range, lowest", min(ratios), "x"),
        figure("monitor", "  pairs' range, highest", max(ratios), "x"),
        figure("monitor", "c=1 p50, monitoring on (median)", on_p50, "ms"),
        figure("monitor", "c=1 p50, monitoring off (median)", off_p50, "ms"),
        figure(
            "monitor", "c=1 p50 added, median of pairs", statistics.median(added), "ms", "<=", 0.05
        ),
        figure("monitor", "  pairs' range, lowest", min(added), "ms"),
        figure("monitor", "  pairs' range, highest", max(added), "ms"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s points: about 1 minute")
    parser.add_argument("--duration", type=float, default=None, help="seconds per point")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per point")
    parser.add_argument(
        "--monitor-interval", type=float, default=60.0, help="the monitored server's loop period"
    )
    parser.add_argument(
        "--sample-rate", type=float, default=1.0, help="the monitored model's log sample rate"
    )
    parser.add_argument(
        "--same",
        action="store_true",
        help="serve both sides unmonitored: the run's own noise floor (an A/A comparison)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else 1.0
    result = run_stopping_servers(lambda: run(args))
    if isinstance(result, int):
        return result
    print(f"\nmonitoring overhead on the compute-bound CNN ({result['cpu']})")
    print(figures_table([Figure(**f) for f in result["figures"]]))
    if result["server_log_errors"]:
        print("\nthe monitored server logged errors:\n" + "\n".join(result["server_log_errors"]))
    out = args.out or result_path("monitor")
    write_json(result, out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
