"""Peers, side by side: the same ONNX models served by inferd and by the usual Python serving
frameworks, each with its own batching on, driven by the same `inferd bench` sweep.

    .venv/bin/python -m bench.peers.run                      # every peer, both models
    .venv/bin/python -m bench.peers.run --peers inferd,mlserver --models cnn --duration 5

Peers: inferd, the bare-ASGI floor (bench/floor_app.py on uvicorn: parse the JSON body,
answer a fixed reply), plain FastAPI + ONNX Runtime, LitServe, BentoML, MLServer, Ray Serve.
inferd and the floor run from inferd's own venv; each other peer is installed on first use
into its own virtual environment under --venvs (pinned in requirements/, reused while the
pins are unchanged). Each server runs on a free 127.0.0.1 port in its own process group and is
always stopped. Raw ONNX Runtime's items/s on the cnn is measured in this process right before
and right after inferd's cnn levels. After the tables the report checks the targets (tiny
c=64 vs the floor, c=1 p50, cnn c=32 vs raw ORT and the peers, p99/p50 at c=64) with
PASS/MISS. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.harness import BenchError
from bench.harness.cpu import add_wait_quiet_option, cpu_model, wait_quiet
from bench.harness.report import result_path, write_json
from bench.harness.servers import run_stopping_servers
from bench.peers.cpu import CpuSampler
from bench.peers.envs import PeerEnv, ensure_all
from bench.peers.load import LOADGENS, Level, run_sweep
from bench.peers.peers import PEERS, Batching, PeerServer, make_server, start_timeout
from bench.peers.report import item_time, report
from bench.peers.targets import RAW_BATCHES, RawOrt, targets
from bench.peers.workload import MIN_CNN_ITEM_MS, MODELS, Workload, build

HERE = Path(__file__).resolve().parent

BUSY_OTHER_CPU = 0.25  # other work above this share of a CPU disturbs a level
LOCAL_PEERS = ("inferd", "floor")  # run from inferd's own venv: nothing to install


def csv(text: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    items = [part.strip() for part in text.split(",") if part.strip()]
    if allowed is not None:
        unknown = [i for i in items if i not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {','.join(allowed)}")
    return items


def machine() -> dict[str, Any]:
    import onnxruntime

    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def inferd_version() -> str:
    import inferd

    return str(getattr(inferd, "__version__", "?"))


def check_loadgen(loadgen: str) -> None:
    if loadgen != "inferd":
        print(
            "WARNING: --loadgen httpx is the stand-in; its figures are not comparable with "
            "inferd bench's",
            flush=True,
        )
        return
    inferd_bin = Path(sys.executable).with_name("inferd")
    probe = subprocess.run(
        [str(inferd_bin), "bench", "--help"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise BenchError(
            "`inferd bench` is not available in this checkout; use --loadgen httpx (a stand-in)"
        )


def describe_level(peer: str, model: str, level: Level) -> str:
    p50 = f"{level.p50_ms:7.2f}" if level.p50_ms is not None else "      -"
    p99 = f"{level.p99_ms:7.2f}" if level.p99_ms is not None else "      -"
    gen = f"  gen cpu {level.generator_cpu:.0%}" if level.generator_cpu is not None else ""
    if level.server_cpu is not None and level.other_cpu is not None:
        gen += f"  server cpu {level.server_cpu:.0%}  other {level.other_cpu:.0%}"
    errors = f"  errors {level.errors}" if level.errors else ""
    flag = "  (generator-bound?)" if level.saturated else ""
    return (
        f"    {peer:9s} {model:5s} c={level.concurrency:<3d} {level.rps:8,.0f} req/s  "
        f"p50 {p50} ms  p99 {p99} ms{gen}{errors}{flag}"
    )


def run_peer(
    peer: str,
    env: PeerEnv | None,
    workloads: list[Workload],
    args: argparse.Namespace,
    batching: Batching,
    work: Path,
    raw: RawOrt | None = None,
) -> dict[str, Any]:
    """Start one peer, sweep every model through it, stop it; what happened, as plain data.
    With `raw`, raw ORT is measured right before and right after the sweep of its model."""
    record: dict[str, Any] = {"peer": peer, "models": {}}
    server: PeerServer | None = None
    try:
        server = make_server(peer, env, workloads, batching, work)
        if args.wait_quiet > 0:
            load = wait_quiet(args.wait_quiet)
            print(f"  {peer}: other work on the machine: {load:.0%} of a CPU", flush=True)
        print(f"  {peer}: starting (log {server.log})", flush=True)
        server.start(start_timeout(peer))
        record["startup_s"] = server.startup_s
        print(
            f"  {peer}: answered every model correctly after {server.startup_s:.1f} s", flush=True
        )
        for w in workloads:
            if raw is not None and raw.model == w.name:
                raw.measure(f"before {peer}'s levels")
            with CpuSampler(server.processes) as sampler:
                levels, loadgen = run_sweep(
                    args.loadgen, server.url, w, args.concurrency, args.duration, args.warmup
                )
            if raw is not None and raw.model == w.name:
                raw.measure(f"after {peer}'s levels")
            for level in levels:
                shares = sampler.shares(*level.window) if level.window else None
                if shares is not None:
                    level.server_cpu = shares[0]
                    level.other_cpu = max(0.0, shares[1] - shares[0] - (level.generator_cpu or 0))
            if not server.alive():
                raise BenchError(f"{peer} died during the {w.name} sweep:\n{server.tail()}")
            for level in levels:
                print(describe_level(peer, w.name, level), flush=True)
            record["models"][w.name] = {
                "levels": [asdict(lv) for lv in levels],
                "loadgen": loadgen,
            }
    except Exception as error:  # one peer's failure is reported, and the others still run
        record["error"] = str(error) if isinstance(error, BenchError) else repr(error)
        print(f"  {peer}: FAILED: {record['error']}", flush=True)
    finally:
        if server is not None:
            server.stop()
    return record


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    check_loadgen(args.loadgen)
    info = machine()
    print(
        f"peers: {', '.join(args.peers)}; models: {', '.join(args.models)}; "
        f"{info['cpus']} CPUs, load average {' '.join(info['loadavg_at_start'])}",
        flush=True,
    )
    batching = Batching(args.max_batch, args.batch_wait_ms, args.threads)
    notes: list[str] = []

    print(f"1. virtual environments under {args.venvs}", flush=True)
    envs = ensure_all([p for p in args.peers if p not in LOCAL_PEERS], args.venvs)

    peers: dict[str, dict[str, Any]] = {}
    for peer in args.peers:
        env = envs.get(peer)
        peers[peer] = {
            "version": inferd_version()
            if peer == "inferd"
            else f"uvicorn {importlib.metadata.version('uvicorn')}"
            if peer == "floor"
            else env.version
            if isinstance(env, PeerEnv)
            else "not installed",
            "install_s": env.install_s if isinstance(env, PeerEnv) else None,
            "install_reused": env.reused if isinstance(env, PeerEnv) else None,
            "packages": env.versions if isinstance(env, PeerEnv) else {},
            "batching": batching.describe(peer),
        }

    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        work = Path(tmp)
        print("2. models and samples", flush=True)
        workloads = [build(name, work / "models", args.threads) for name in args.models]
        models: dict[str, Any] = {}
        for w in workloads:
            description = (
                "y = x + 1 on FP32[1,4]: costs nothing, so req/s is the serving cost"
                if w.name == "tiny"
                else "CNN on FP32[1,1,28,28] (2 conv, maxpool, 2 gemm): compute-bound"
            )
            models[w.name] = {
                "description": description,
                "item_ms": w.item_ms,
                "batch32_item_ms": w.batch32_item_ms,
                "body_bytes": len(w.first_body),
            }
            print(
                f"  {w.name}: raw ORT {item_time(w.item_ms)}/item at batch 1, "
                f"{item_time(w.batch32_item_ms)}/item at batch 32; body {len(w.first_body):,} B",
                flush=True,
            )
            if w.name == "cnn" and w.item_ms < MIN_CNN_ITEM_MS:
                notes.append(
                    f"cnn took {w.item_ms:.2f} ms per item, under the "
                    f"{MIN_CNN_ITEM_MS:g} ms a compute-bound model should cost here"
                )

        cnn = next((w for w in workloads if w.name == "cnn"), None)
        raw = None
        if cnn is not None and "inferd" in args.peers:
            batches = sorted({b for b in RAW_BATCHES if b <= args.max_batch} | {args.max_batch})
            raw = RawOrt(cnn, args.threads, batches, args.raw_seconds)

        print(f"3. servers, one at a time ({args.loadgen} load)", flush=True)
        for peer in args.peers:
            env = envs.get(peer)
            if isinstance(env, BenchError):
                records.append({"peer": peer, "models": {}, "error": f"install failed: {env}"})
                continue
            record = run_peer(
                peer, env, workloads, args, batching, work / peer, raw if peer == "inferd" else None
            )
            peers[peer]["startup_s"] = record.get("startup_s")
            records.append(record)
            log = work / peer / f"{peer}.log"
            if log.exists():  # the work folder goes away; the servers' logs stay
                args.logs.mkdir(parents=True, exist_ok=True)
                shutil.copy(log, args.logs / log.name)
                peers[peer]["log"] = str(args.logs / log.name)

    for record in records:
        if "error" in record:
            notes.append(f"{record['peer']} FAILED: {record['error'].splitlines()[0]}")
        for model, data in record["models"].items():
            for lv in data["levels"]:
                if (lv["other_cpu"] or 0) > BUSY_OTHER_CPU:
                    notes.append(
                        f"{record['peer']} {model} c={lv['concurrency']}: other work used "
                        f"{lv['other_cpu']:.0%} of a CPU; that level is disturbed"
                    )
                if lv["saturated"]:
                    notes.append(
                        f"{record['peer']} {model} c={lv['concurrency']}: inferd bench says "
                        "the generator may have been the limit"
                    )
    label = (
        "inferd bench (httptools client, 1 process)"
        if args.loadgen == "inferd"
        else "httpx STAND-IN (not inferd bench)"
    )
    settings = {
        "peers": args.peers,
        "models": args.models,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "raw_seconds": args.raw_seconds,
        "loadgen": args.loadgen,
        "loadgen_label": label,
        "max_batch_size": args.max_batch,
        "batch_wait_ms": args.batch_wait_ms,
        "threads": args.threads,
    }
    raw_record = raw.record() if raw is not None and raw.bracket.pairs else None
    return {
        "machine": info,
        "settings": settings,
        "elapsed_s": time.monotonic() - started,
        "models": models,
        "peers": peers,
        "records": records,
        "raw_ort": raw_record,
        "targets": targets(records, settings, raw_record),
        "notes": notes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description="inferd and its peers serving the same ONNX models (see bench/README.md)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--peers", type=lambda t: csv(t, PEERS), default=list(PEERS))
    parser.add_argument("--models", type=lambda t: csv(t, MODELS), default=list(MODELS))
    parser.add_argument(
        "--concurrency",
        type=lambda t: [int(c) for c in csv(t)],
        default=[1, 4, 16, 32, 64],
        help="closed-loop levels; the targets use c=1, 32 and 64",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="measured s per level")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured s per level")
    parser.add_argument("--venvs", type=Path, default=HERE / ".venvs")
    parser.add_argument(
        "--loadgen",
        choices=LOADGENS,
        default="inferd",
        help="inferd: `inferd bench`; httpx: a stand-in, not for publishing",
    )
    parser.add_argument("--max-batch", type=int, default=32, help="every batching peer")
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=None,
        help="longest wait for a batch to fill, for inferd, LitServe, MLServer and Ray Serve "
        "alike (BentoML picks its own); default: the smallest each handles well "
        "(inferd and Ray 0, LitServe and MLServer 1)",
    )
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads, all peers")
    parser.add_argument(
        "--raw-seconds",
        type=float,
        default=1.0,
        help="raw ORT on the cnn: measured s per batch size, before and after inferd's levels",
    )
    add_wait_quiet_option(parser, "peer")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    # inferd, the baseline of every ratio, goes first; then the floor, its yardstick
    first = [p for p in LOCAL_PEERS if p in args.peers]
    args.peers = [*first, *[p for p in args.peers if p not in first]]
    args.venvs = args.venvs.resolve()
    args.out = args.out or result_path("peers")
    args.logs = args.out.with_suffix("")  # the servers' logs: bench/results/peers-<time>/

    result = run_stopping_servers(lambda: run(args), "run")
    if isinstance(result, int):
        return result
    print(report(result))
    write_json(result, args.out)
    print(f"\nwrote {args.out} (server logs in {args.logs}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
