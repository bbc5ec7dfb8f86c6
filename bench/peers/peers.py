"""How each peer is started: its command line, environment and configuration files.

Every server listens on a free 127.0.0.1 port, runs in its own process group (so stopping it
reaches every process it started: LitServe's and MLServer's workers, BentoML's arbiter, Ray's
daemons and actors), and counts as ready only once it answers sample 0 of every model with
raw ONNX Runtime's output. inferd and the floor (bench/floor_app.py, which answers that output
as a fixed reply) run from inferd's own venv; the others from their own (envs.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import ROOT, BenchError
from bench.harness.servers import HOST, Server, free_port, http
from bench.peers.envs import PeerEnv
from bench.peers.workload import Workload, check_reply

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "servers"
FLOOR_APP = HERE.parent / "floor_app.py"  # the bare-ASGI floor, also bench/serve.py's
PEERS = ("inferd", "floor", "fastapi", "litserve", "bentoml", "mlserver", "rayserve")
START_TIMEOUT_S = {"rayserve": 300.0}  # Ray starts a cluster, a controller and a proxy first
DEFAULT_START_TIMEOUT_S = 120.0


# The shortest wait for a batch to fill that each peer handles well, used unless
# --batch-wait-ms sets one for all: inferd and Ray Serve take whatever is queued when the
# model is free (0); LitServe's worker busy-polls its queue at 0, stealing a core, and
# MLServer turns batching off at 0, so they get 1 ms.
SMALLEST_WAIT_MS = {"inferd": 0.0, "rayserve": 0.0, "litserve": 1.0, "mlserver": 1.0}


@dataclass(frozen=True)
class Batching:
    """The same batching limits for every peer that batches."""

    max_batch_size: int
    wait_ms: float | None  # longest wait for a batch to fill; None: SMALLEST_WAIT_MS
    threads: int  # ONNX Runtime intra-op threads

    def wait_for(self, peer: str) -> float:
        if self.wait_ms is not None:
            return self.wait_ms
        return SMALLEST_WAIT_MS.get(peer, 0.0)

    def describe(self, peer: str) -> str:
        """The peer's batching setup in its own terms, for the report."""
        n, w = self.max_batch_size, self.wait_for(peer)
        return {
            "inferd": f"model.yaml batching: {{max_batch_size: {n}, max_delay_ms: {w:g}}}, "
            "runtime: {instances: 1}",
            "floor": "none, no model: parses the body (orjson), answers raw ORT's output for "
            "sample 0 (fixed)",
            "fastapi": "none: one ORT run per request, in FastAPI's thread pool",
            "litserve": f"LitAPI(max_batch_size={n}, batch_timeout={w / 1000:g}), "
            "1 inference worker process per model",
            "bentoml": f"@bentoml.api(batchable=True, max_batch_size={n}, "
            "max_latency_ms=60000): adaptive wait",
            "mlserver": f"model-settings.json max_batch_size {n}, max_batch_time {w / 1000:g}; "
            "parallel_workers 1",
            "rayserve": f"@serve.batch(max_batch_size={n}, batch_wait_timeout_s={w / 1000:g}), "
            f"max_ongoing_requests {2 * n}, 1 replica",
        }[peer]


class PeerServer(Server):
    """harness.servers.Server with its own environment and working folder, ready when it answers
    inference correctly, and stopped down to the last process of its session."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        log: Path,
        env: dict[str, str],
        cwd: Path,
        workloads: list[Workload],
    ) -> None:
        super().__init__(name, argv, port, "", log)
        self.env = env
        self.cwd = cwd
        self.workloads = workloads
        self.startup_s: float | None = None

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        started = time.monotonic()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group and session
            )
        pending = list(self.workloads)
        last = "no answer yet"
        while pending:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.tail()}"
                )
            if time.monotonic() - started > timeout_s:
                raise BenchError(
                    f"{self.name} was not ready after {timeout_s:.0f} s ({last}):\n{self.tail()}"
                )
            workload = pending[0]
            try:
                status, _, body = http(
                    "POST",
                    self.url + workload.route,
                    workload.first_body,
                    {"Content-Type": "application/json"},
                )
            except OSError as error:
                last = str(error)
                time.sleep(0.5)
                continue
            if status != 200:
                last = f"{workload.route} answered {status}: {body[:200]!r}"
                time.sleep(0.5)
                continue
            problem = check_reply(workload, json.loads(body))
            if problem:
                raise BenchError(f"{self.name} {workload.name}: wrong answer: {problem}")
            pending.pop(0)
        self.startup_s = time.monotonic() - started

    def processes(self) -> list[int]:
        """Every live process of this server: its process tree and its session (BentoML's
        arbiter starts its workers in sessions of their own; Ray's daemons stay in ours)."""
        if self.process is None:
            return []
        return sorted(set(process_tree(self.process.pid)) | set(session_members(self.process.pid)))

    def stop(self) -> None:
        members = self.processes()
        super().stop()  # SIGTERM to the group, then SIGKILL
        deadline = time.monotonic() + 5.0
        while True:
            alive = [pid for pid in members if is_alive(pid)]
            if not alive or time.monotonic() > deadline:
                break
            for pid in alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        if alive:
            print(f"  WARNING: {self.name}: processes {alive} survived SIGKILL", flush=True)


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the command name (state, ppid, pgrp, session, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _all_stats() -> dict[int, list[str]]:
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] != "Z":
            stats[int(entry.name)] = fields
    return stats


def is_alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie is dead, waiting to be reaped


def session_members(session: int) -> list[int]:
    """Live processes still in the session that the server's first process led: a child that
    made its own process group is out of reach of killpg, not of this."""
    me = os.getpid()
    return [pid for pid, f in _all_stats().items() if int(f[3]) == session and pid != me]


def process_tree(root: int) -> list[int]:
    """root and every live descendant of it."""
    children: dict[int, list[int]] = {}
    for pid, fields in _all_stats().items():
        children.setdefault(int(fields[1]), []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def write_config(
    path: Path, port: int, workloads: list[Workload], batching: Batching, wait_ms: float
) -> None:
    """The JSON file servers/common.py reads ($PEER_CONFIG)."""
    path.write_text(
        json.dumps(
            {
                "host": HOST,
                "port": port,
                "models": [
                    {"name": w.name, "path": str(w.onnx), "input": w.input} for w in workloads
                ],
                "max_batch_size": batching.max_batch_size,
                "batch_wait_s": wait_ms / 1000,
                "threads": batching.threads,
            },
            indent=2,
        )
    )


def inferd_repository(folder: Path, workloads: list[Workload], batching: Batching) -> Path:
    """A model repository holding the same ONNX files (linked, not copied) with batching."""
    for w in workloads:
        version = folder / w.name / "1"
        version.mkdir(parents=True, exist_ok=True)
        (version / "model.onnx").symlink_to(w.onnx)
        (folder / w.name / "model.yaml").write_text(
            f"name: {w.name}\n"
            f"batching: {{max_batch_size: {batching.max_batch_size}, "
            f"max_delay_ms: {batching.wait_for('inferd'):g}}}\n"
            f"runtime: {{threads: {batching.threads}}}\n"
        )
    return folder


def mlserver_folder(folder: Path, port: int, workloads: list[Workload], batching: Batching) -> Path:
    """MLServer's settings.json and one model-settings.json per model, from the templates in
    servers/mlserver/ with this run's ports, files and batching filled in."""
    template = SERVERS / "mlserver"
    settings: dict[str, Any] = json.loads((template / "settings.json").read_text())
    settings.update(host=HOST, http_port=port, grpc_port=free_port(), metrics_port=free_port())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    for w in workloads:
        model: dict[str, Any] = json.loads((template / "model-settings.json").read_text())
        model.update(
            name=w.name,
            max_batch_size=batching.max_batch_size,
            max_batch_time=batching.wait_for("mlserver") / 1000,
        )
        model["parameters"]["uri"] = str(w.onnx)
        model["parameters"]["extra"]["threads"] = batching.threads
        (folder / w.name).mkdir(exist_ok=True)
        (folder / w.name / "model-settings.json").write_text(json.dumps(model, indent=2))
    return folder


def floor_replies(path: Path, workloads: list[Workload]) -> Path:
    """The floor's fixed replies (bench/floor_app.py --replies): per model route, the V2
    response carrying raw ORT's output for sample 0, so it passes the readiness check."""
    replies = {
        w.route: {
            "model_name": w.name,
            "model_version": "1",
            "outputs": [
                {
                    "name": w.output,
                    "datatype": "FP32",
                    "shape": list(w.expected.shape),
                    "data": w.expected.ravel().tolist(),
                }
            ],
        }
        for w in workloads
    }
    path.write_text(json.dumps(replies, indent=2))
    return path


def make_server(
    peer: str,
    env: PeerEnv | None,
    workloads: list[Workload],
    batching: Batching,
    work: Path,
) -> PeerServer:
    """The peer's server, configured for this run (not started)."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = work / f"{peer}-config.json"
    write_config(config, port, workloads, batching, batching.wait_for(peer))
    environ = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    environ.update(
        PEER_CONFIG=str(config),
        PYTHONPATH=f"{SERVERS}:{SERVERS / 'mlserver'}",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS=str(batching.threads),
    )
    if env is not None:
        environ["VIRTUAL_ENV"] = str(env.path)
        environ["PATH"] = f"{env.path / 'bin'}:{environ.get('PATH', '')}"
    cwd = SERVERS
    if peer == "inferd":
        inferd_bin = Path(sys.executable).with_name("inferd")
        repo = inferd_repository(work / "inferd-repo", workloads, batching)
        argv = [
            str(inferd_bin),
            "serve",
            str(repo),
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--data-dir",
            str(work / "inferd-data"),
        ]
        cwd = ROOT
    elif peer == "floor":  # inferd's own venv, like inferd: uvicorn, uvloop, httptools, orjson
        replies = floor_replies(work / "floor-replies.json", workloads)
        argv = [
            sys.executable,
            str(FLOOR_APP),
            "--port",
            str(port),
            "--replies",
            str(replies),
            "--log-level",
            "warning",
        ]
        cwd = ROOT
    elif env is None:
        raise BenchError(f"{peer} needs its virtual environment")
    elif peer == "fastapi":
        argv = [
            str(env.python),
            "-m",
            "uvicorn",
            "fastapi_app:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    elif peer == "litserve":
        argv = [str(env.python), "litserve_app.py"]
    elif peer == "bentoml":
        environ.update(BENTOML_HOME=str(work / "bentoml-home"), BENTOML_DO_NOT_TRACK="True")
        argv = [
            str(env.bin("bentoml")),
            "serve",
            "bentoml_service:Peers",
            "--host",
            HOST,
            "--port",
            str(port),
        ]
    elif peer == "mlserver":
        folder = mlserver_folder(work / "mlserver", port, workloads, batching)
        argv = [str(env.bin("mlserver")), "start", str(folder)]
        cwd = folder  # MLServer keeps .metrics/ and .envs/ in its working folder
    elif peer == "rayserve":
        environ.update(RAY_USAGE_STATS_ENABLED="0", PEER_RAY_TMP=str(work / "ray"))
        argv = [str(env.python), "rayserve_app.py"]
    else:
        raise BenchError(f"unknown peer {peer!r}; use any of {', '.join(PEERS)}")
    return PeerServer(peer, argv, port, work / f"{peer}.log", environ, cwd, workloads)


def start_timeout(peer: str) -> float:
    return START_TIMEOUT_S.get(peer, DEFAULT_START_TIMEOUT_S)
