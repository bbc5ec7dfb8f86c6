"""The Ray Serve engine (`inferd serve --engine ray`) against the single-process server, in
the same run, with the same load generator (wrk, one thread, keep-alive):

    .venv/bin/python -m bench.ray             # about 3 minutes
    .venv/bin/python -m bench.ray --quick     # about 2 minutes, noisier

1. per-request overhead: the trivial model (x + 1) at c=1, single process vs one Ray replica;
   the difference of the mean latencies is what a trip to a replica and back costs;
2. scale-out (target: 2 replicas ≥ 1.5x one): a compute-bound CNN that costs about 8 ms per
   item at any batch size (`heavy`: 192 and 384 channels and a small head, ORT 1 thread per
   replica) at c=32, two replicas vs one, beside the single-process server's own figure;
3. the same on `bench/serve.py`'s CNN (`compute`), which batching brings under 1 ms per item:
   there the Ray round trip, not the model, is the cost.

Each configuration is a fresh `inferd serve` (Ray starts a local cluster under its
--data-dir; a 2-core machine runs two 1-CPU replicas at most, so each replica count is a
separate server). Prints a table; writes bench/results/ray-<time>.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness.models import COMPUTE_SHAPE, build_compute_model, build_trivial_model
from bench.harness.raw_ort import measure_raw, ort_session
from bench.harness.report import result_path, write_json
from bench.harness.servers import Server, inferd_serve, run_stopping_servers
from bench.harness.wrk import check_wrk, run_wrk, write_wrk_script
from bench.serving.workload import COMPUTE, TRIVIAL, make_bodies

THREADS = 1
"""ORT threads of every model, in the single process and in each replica."""


def _model_yaml(name: str, max_batch_size: int, replicas: int) -> str:
    return (
        f"name: {name}\n"
        f"batching: {{max_batch_size: {max_batch_size}, max_delay_ms: 0, max_queue: 4096}}\n"
        f"runtime: {{threads: {THREADS}}}\n"
        f"scale: {{min_replicas: {replicas}, max_replicas: {replicas}}}\n"
    )


HEAVY_CHANNELS = (192, 384)
HEAVY_HIDDEN = 16
"""The scale-out model: wide convolutions and a small head (a Gemm whose weights stay in
cache), so an item costs the same compute at any batch size: adding a replica adds compute,
not a smaller batch."""


def _repository(root: Path, models: dict[str, int], onnx_files: dict[str, Path]) -> Path:
    """`models`: name ("trivial", "compute" or "heavy") → replicas."""
    for name, replicas in models.items():
        folder = root / name
        (folder / "1").mkdir(parents=True)
        if name == "trivial":
            build_trivial_model(folder / "1" / "model.onnx")
        else:
            (folder / "1" / "model.onnx").write_bytes(onnx_files[name].read_bytes())
        batch = 8 if name == "trivial" else 32
        (folder / "model.yaml").write_text(_model_yaml(name, batch, replicas))
    return root


def _serve(name: str, repo: Path, work: Path, *flags: str) -> Server:
    common = ("--data-dir", str(work / f"data-{name}"), "--no-monitor", "--log-level", "warning")
    server = inferd_serve(name, repo, work / f"{name}.log", *common, *flags)
    server.start(timeout_s=180)
    return server


def _point(server: Server, path: str, script: Path, concurrency: int, seconds: float) -> Any:
    run_wrk(server.url + path, script, concurrency, min(2.0, seconds / 2))  # warm-up
    summary, _ = run_wrk(server.url + path, script, concurrency, seconds)
    if summary["non_2xx_text"] or summary["status"] or summary["timeout"]:
        raise RuntimeError(f"{server.name} {path}: failed requests: {summary}")
    rps = summary["requests"] / (summary["duration_us"] / 1e6)
    point = {"rps": rps, "mean_ms": summary["mean_us"] / 1000, "p50_ms": summary["p50_us"] / 1000}
    print(
        f"  {server.name:<14} {path:<28} c={concurrency:<3} {rps:8.1f} req/s  "
        f"mean {point['mean_ms']:.2f} ms  p50 {point['p50_ms']:.2f} ms",
        flush=True,
    )
    return point


def _raw_item_ms(onnx_file: Path, label: str) -> dict[str, float]:
    """The model alone in ORT (1 thread), per item at batch 1 and 32."""
    session = ort_session(onnx_file, THREADS)
    rng = np.random.default_rng(7)
    alone = {f"batch{b}": measure_raw(session, b, 2.0, rng).item_ms for b in (1, 32)}
    print(
        f"{label} alone (ORT, 1 thread): {alone['batch1']:.2f} ms/item at batch 1, "
        f"{alone['batch32']:.2f} at batch 32",
        flush=True,
    )
    return alone


def _measure(
    name: str, repo: Path, work: Path, points: dict[str, tuple[str, Path, int]], seconds: float
) -> dict[str, Any]:
    """One server, its points (figure name → path, wrk script, connections), then stopped."""
    flags = () if name == "local" else ("--engine", "ray")
    print(f"{name}:", flush=True)
    server = _serve(name, repo, work, *flags)
    try:
        return {
            figure: _point(server, path, script, concurrency, seconds)
            for figure, (path, script, concurrency) in points.items()
        }
    finally:
        server.stop()


def run(seconds: float) -> dict[str, Any]:
    check_wrk()
    figures: dict[str, Any] = {}
    # A short folder: Ray's unix socket paths under --data-dir must stay below 108 bytes.
    with tempfile.TemporaryDirectory(prefix="ibr-", dir="/tmp") as temp:
        work = Path(temp)
        onnx_files = {
            "compute": build_compute_model(work / "cnn.onnx"),
            "heavy": build_compute_model(
                work / "heavy.onnx",
                channels=HEAVY_CHANNELS,
                hidden=HEAVY_HIDDEN,
                name="bench_heavy",
            ),
        }
        figures["cnn_ms_per_item"] = _raw_item_ms(onnx_files["compute"], "the CNN")
        figures["heavy_ms_per_item"] = _raw_item_ms(onnx_files["heavy"], "the heavy CNN")
        x = np.random.default_rng(3).standard_normal((1, *COMPUTE_SHAPE)).astype(np.float32)
        bodies = make_bodies(work, b"unused", x)
        trivial = write_wrk_script(work, bodies["trivial_binary"])
        compute = write_wrk_script(work, bodies["compute_binary"])
        heavy_path = COMPUTE.replace("compute", "heavy")
        c1 = {"trivial_c1": (TRIVIAL, trivial, 1)}
        cnn = {"compute_c32": (COMPUTE, compute, 32)}
        heavy = {"heavy_c32": (heavy_path, compute, 32)}
        # One server per replica count: two 1-CPU replicas fill a 2-core machine.
        runs: list[tuple[str, dict[str, int], dict[str, tuple[str, Path, int]]]] = [
            ("local", {"trivial": 1, "compute": 1, "heavy": 1}, {**c1, **cnn, **heavy}),
            ("ray1", {"trivial": 1, "heavy": 1}, {**c1, **heavy}),
            ("ray2", {"heavy": 2}, heavy),
            ("ray1-cnn", {"compute": 1}, cnn),
            ("ray2-cnn", {"compute": 2}, cnn),
        ]
        for name, models, points in runs:
            repo = _repository(work / name, models, onnx_files)
            measured = _measure(name, repo, work, points, seconds)
            prefix = name.removesuffix("-cnn")
            figures.update({f"{prefix}_{figure}": point for figure, point in measured.items()})

    def rps(figure: str) -> float:
        return float(figures[figure]["rps"])

    overhead = figures["ray1_trivial_c1"]["mean_ms"] - figures["local_trivial_c1"]["mean_ms"]
    figures.update(
        ray_overhead_ms_per_request=overhead,
        ray_latency_ratio_c1=figures["ray1_trivial_c1"]["mean_ms"]
        / figures["local_trivial_c1"]["mean_ms"],
        two_vs_one_replica=rps("ray2_heavy_c32") / rps("ray1_heavy_c32"),
        heavy_one_replica_vs_single_process=rps("ray1_heavy_c32") / rps("local_heavy_c32"),
        heavy_two_replicas_vs_single_process=rps("ray2_heavy_c32") / rps("local_heavy_c32"),
        cnn_two_vs_one_replica=rps("ray2_compute_c32") / rps("ray1_compute_c32"),
        cnn_one_replica_vs_single_process=rps("ray1_compute_c32") / rps("local_compute_c32"),
    )
    scale = figures["two_vs_one_replica"]
    print()
    print(f"{'figure':<52} {'value':>10}  target")
    print(f"{'Ray per-request overhead (trivial, c=1, mean)':<52} {overhead:>7.2f} ms  reported")
    print(
        f"{'  latency, Ray 1 replica / single process':<52} "
        f"{figures['ray_latency_ratio_c1']:>9.2f}x  reported"
    )
    verdict = "PASS" if scale >= 1.5 else "MISS"
    label = "2 replicas / 1 replica (heavy CNN, c=32, req/s)"
    print(f"{label:<52} {scale:>9.2f}x  >= 1.5x {verdict}")
    for label, key in (
        ("  heavy: 1 replica / single process", "heavy_one_replica_vs_single_process"),
        ("  heavy: 2 replicas / single process", "heavy_two_replicas_vs_single_process"),
        ("CNN: 2 replicas / 1 replica (c=32)", "cnn_two_vs_one_replica"),
        ("  CNN: 1 replica / single process", "cnn_one_replica_vs_single_process"),
    ):
        print(f"{label:<52} {figures[key]:>9.2f}x  reported")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s points instead of 10 s")
    args = parser.parse_args()
    try:
        import ray  # noqa: F401  (only to say early that the extra is missing)
    except ImportError:
        print("the Ray engine needs: pip install 'inferd[ray]'", file=sys.stderr)
        return 2
    started = time.time()
    outcome = run_stopping_servers(lambda: run(5.0 if args.quick else 10.0), "the Ray benchmark")
    if isinstance(outcome, int):
        return outcome
    path = result_path("ray")
    write_json({"figures": outcome, "wall_s": time.time() - started}, path)
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
