"""Peers, side by side: the same ONNX models served by inferd and by the usual Python serving
frameworks, each with its own batching on, driven by the same `inferd bench` sweep.

    .venv/bin/python bench/peers/run.py                      # every peer, both models
    .venv/bin/python bench/peers/run.py --peers inferd,mlserver --models cnn --duration 5

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
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bench/: serve.py's server handling and models

from cpu import CpuSampler  # noqa: E402
from envs import PeerEnv, ensure_all  # noqa: E402
from load import LOADGENS, Level, run_sweep  # noqa: E402
from peers import PEERS, Batching, PeerServer, make_server, start_timeout  # noqa: E402
from serve import (  # noqa: E402
    RESULTS,
    BenchError,
    cpu_model,
    table,
    wait_quiet,
)
from targets import RAW_BATCHES, RawOrt, fmt_ms, targets, targets_block  # noqa: E402
from workload import MIN_CNN_ITEM_MS, MODELS, Workload, build  # noqa: E402

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
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each peer, wait up to this long for other work to use under 25%% of a "
        "CPU (a shared machine); 0: don't wait",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    # inferd, the baseline of every ratio, goes first; then the floor, its yardstick
    first = [p for p in LOCAL_PEERS if p in args.peers]
    args.peers = [*first, *[p for p in args.peers if p not in first]]
    args.venvs = args.venvs.resolve()
    stamp = f"{dt.datetime.now():%Y%m%d-%H%M%S}"
    args.out = args.out or RESULTS / f"peers-{stamp}.json"
    args.logs = args.out.with_suffix("")  # the servers' logs: bench/results/peers-<time>/

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    try:
        result = run(args)
    except BenchError as error:
        print(f"\nrun failed: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    print(report(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {args.out} (server logs in {args.logs}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
