"""inferd serving benchmark: inferd over HTTP against baselines measured in the same run.

    .venv/bin/python bench/serve.py            # full run, ~4-5 minutes
    .venv/bin/python bench/serve.py --quick    # ~1.5 minutes, noisier

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
import base64
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
DIGITS_DIR = ROOT / "model_repository" / "digits"
DIGITS_SAMPLE = ROOT / "examples" / "digits" / "samples" / "seven.png"
HOST = "127.0.0.1"  # never anything else
CLK_TCK = os.sysconf("SC_CLK_TCK")

TINY_CONCURRENCY = (1, 8, 32, 64)
RAW_BATCHES = (1, 4, 8, 16, 32)
COMPUTE_SHAPE = (3, 32, 32)

# Targets: (figure key) -> (comparison, threshold)
TARGET_FLOOR_RATIO = 0.70
TARGET_RAW_RATIO = 0.80
TARGET_LATENCY_OVERHEAD_MS = 1.0
TARGET_BATCH_GAIN_RATIO = 0.80
TARGET_COMPUTE_ITEM_MS = 2.0


class BenchError(RuntimeError):
    """A run that cannot give trustworthy numbers (server died, non-2xx answers, ...)."""


# ---------------------------------------------------------------------------------------------
# machine


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    import onnxruntime

    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout + wrk.stderr).splitlines()[0] if wrk.stdout + wrk.stderr else "?"
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "wrk": wrk_version.strip(),
        "kernel": platform.release(),
    }


def cpu_busy_seconds() -> float:
    """Machine-wide busy CPU seconds (all CPUs), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def process_cpu_seconds(pid: int, stat: str | None = None) -> float:
    """user+system CPU seconds of one process (all its threads)."""
    try:
        text = Path(stat or f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    after_name = text.rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / CLK_TCK


def thread_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process's main thread alone (for a server: its event loop)."""
    return process_cpu_seconds(pid, f"/proc/{pid}/task/{pid}/stat")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------
# servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    assert url.startswith(f"http://{HOST}:"), url
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class Server:
    """A server subprocess in its own process group; always stopped by `stop()`."""

    def __init__(self, name: str, argv: list[str], port: int, ready_path: str, log: Path) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.ready_path = ready_path
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 90.0) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, so stop() gets every child
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.tail()}"
                )
            with contextlib.suppress(OSError):
                status, _, _ = http("GET", self.url + self.ready_path)
                if status == 200:
                    return
            time.sleep(0.2)
        raise BenchError(f"{self.name} was not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


# ---------------------------------------------------------------------------------------------
# the compute-bound model


def build_compute_model(
    path: Path,
    seed: int = 0,
    shape: tuple[int, int, int] = COMPUTE_SHAPE,
    channels: tuple[int, int] = (32, 64),
    hidden: int = 768,
    name: str = "bench_cnn",
) -> Path:
    """x[N,3,32,32] → logits[N,10] by default: two 3x3 Conv+Relu (32, 64 channels), 2x2
    MaxPool, then Gemm 16384→768 + Relu and Gemm 768→10. Fixed random weights. The
    convolutions are compute-bound; the 48 MB first Gemm is memory-bound at batch 1, which is
    what batching amortizes (its weights are read once per batch instead of once per item)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def weight(name: str, shape: tuple[int, ...]) -> Any:
        fan_in = int(np.prod(shape[1:]))
        values = rng.standard_normal(shape) / np.sqrt(fan_in)
        return numpy_helper.from_array(values.astype(np.float32), name)

    def zeros(name: str, size: int) -> Any:
        return numpy_helper.from_array(np.zeros(size, np.float32), name)

    (c1, c2), classes = channels, 10
    features = c2 * (shape[1] // 2) * (shape[2] // 2)
    initializers = [
        weight("w1", (c1, shape[0], 3, 3)),
        zeros("b1", c1),
        weight("w2", (c2, c1, 3, 3)),
        zeros("b2", c2),
        weight("w3", (hidden, features)),
        zeros("b3", hidden),
        weight("w4", (classes, hidden)),
        zeros("b4", classes),
    ]
    node = helper.make_node
    nodes = [
        node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        node("Relu", ["c1"], ["r1"]),
        node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        node("Relu", ["c2"], ["r2"]),
        node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Flatten", ["p2"], ["f"]),
        node("Gemm", ["f", "w3", "b3"], ["h"], transB=1),
        node("Relu", ["h"], ["rh"]),
        node("Gemm", ["rh", "w4", "b4"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def build_trivial_model(path: Path) -> Path:
    """x[N,4] FP32 → y[N,4] = x + 1: a model that costs nothing, so serving it measures
    inferd's own per-request cost (framework, codecs, batching, metrics) over the floor."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.ones(4, np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "bench_trivial",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_model_yaml(model_dir: Path, max_batch_size: int, threads: int) -> None:
    model_dir.joinpath("model.yaml").write_text(
        f"name: {model_dir.name}\n"
        f"batching: {{max_batch_size: {max_batch_size}, max_delay_ms: 0}}\n"
        f"runtime: {{threads: {threads}}}\n"
    )


def ort_session(path: Path, threads: int) -> Any:
    """A session with exactly the options inferd's OnnxBackend uses."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


@dataclass
class RawPoint:
    batch: int
    calls: int
    items_per_s: float
    call_p50_ms: float
    item_ms: float  # p50 call time / batch


def measure_raw(
    session: Any, batch: int, seconds: float, rng: np.random.Generator, gap_s: float = 0.0
) -> RawPoint:
    """Back-to-back session.run calls at one batch size (or with `gap_s` of idle between
    calls, as a server at c=1 has); items/s counts only the time inside run()."""
    node = session.get_inputs()[0]  # the compute model's, or any one-input float model's
    x = rng.standard_normal((batch, *node.shape[1:])).astype(np.float32)
    feed = {node.name: x}
    warm_until = time.perf_counter() + min(0.3, seconds / 3)
    while time.perf_counter() < warm_until:
        session.run(None, feed)
    times: list[float] = []
    started = time.perf_counter()
    end = started + seconds
    while True:
        t0 = time.perf_counter()
        session.run(None, feed)
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 >= end and len(times) >= 5:
            break
        if gap_s:
            time.sleep(gap_s)
    total = sum(times) if gap_s else time.perf_counter() - started
    p50 = statistics.median(times) * 1000
    return RawPoint(batch, len(times), batch * len(times) / total, p50, p50 / batch)


def digits_pipeline(model_dir: Path, body: bytes, seconds: float) -> dict[str, float]:
    """inferd's own digits pipeline in-process, no HTTP: decode a V2 JSON body, then
    run_batch (preprocess, ORT, postprocess) in this thread. The ceiling any server running
    this pipeline on one core can reach, and the latency it cannot go under."""
    from inferd.codecs import decode_infer_request
    from inferd.repository import load_model

    entry = load_model(model_dir)
    if entry.latest is None:
        raise BenchError(f"digits did not load in-process: {entry.errors}")
    pipeline = entry.latest.pipeline
    out: dict[str, float] = {}
    try:
        for batch in (1, 32):

            def once(batch: int = batch) -> None:
                items = [
                    pipeline.items_from_tensors(decode_infer_request(body).inputs)[0]
                    for _ in range(batch)
                ]
                pipeline.run_batch(items)

            once()
            times: list[float] = []
            end = time.perf_counter() + seconds / 2
            while time.perf_counter() < end or len(times) < 5:
                t0 = time.perf_counter()
                once()
                times.append(time.perf_counter() - t0)
            out[f"batch{batch}_call_p50_ms"] = statistics.median(times) * 1000
            out[f"batch{batch}_items_per_s"] = batch * len(times) / sum(times)
    finally:
        entry.latest.pipeline.backend.close()
    return out


def wait_quiet(limit_s: float, threshold: float = 0.25) -> float:
    """Wait (up to limit_s) until other work on the machine uses under `threshold` of a CPU;
    returns the load last seen."""
    deadline = time.monotonic() + limit_s
    while True:
        busy0, mine0 = cpu_busy_seconds(), children_cpu_seconds()
        time.sleep(0.5)
        load = (cpu_busy_seconds() - busy0 - (children_cpu_seconds() - mine0)) / 0.5
        if load < threshold or time.monotonic() >= deadline:
            return load
        print(f"    (waiting for a quieter machine: other load {load:.0%} of a CPU)", flush=True)


# ---------------------------------------------------------------------------------------------
# request bodies


@dataclass
class Body:
    """One POST request, as a file the wrk script loads (binary-safe)."""

    name: str
    path: str
    data: bytes
    headers: dict[str, str]


def binary_request(inputs: list[tuple[str, str, list[int], bytes]]) -> tuple[bytes, int]:
    docs = [
        {"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(raw)}}
        for n, d, s, raw in inputs
    ]
    header = json.dumps({"inputs": docs}, separators=(",", ":")).encode()
    return header + b"".join(raw for *_, raw in inputs), len(header)


def make_bodies(workdir: Path, png: bytes, compute_x: np.ndarray) -> dict[str, Body]:
    bodies: dict[str, Body] = {}

    def add(name: str, data: bytes, headers: dict[str, str]) -> None:
        path = workdir / f"{name}.body"
        path.write_bytes(data)
        bodies[name] = Body(name, str(path), data, headers)

    digits_json = {
        "inputs": [
            {
                "name": "image",
                "datatype": "BYTES",
                "shape": [1],
                "parameters": {"content_type": "base64"},
                "data": [base64.b64encode(png).decode("ascii")],
            }
        ]
    }
    add(
        "digits_json",
        json.dumps(digits_json, separators=(",", ":")).encode(),
        {"Content-Type": "application/json"},
    )
    element = struct.pack("<I", len(png)) + png  # a BYTES element: 4-byte LE length + bytes
    data, header_len = binary_request([("image", "BYTES", [1], element)])
    add(
        "digits_binary",
        data,
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(header_len),
        },
    )
    data, header_len = binary_request([("x", "FP32", [1, 4], np.arange(4, dtype="<f4").tobytes())])
    add(
        "trivial_binary",
        data,
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(header_len),
        },
    )
    raw = np.ascontiguousarray(compute_x, dtype="<f4").tobytes()
    data, header_len = binary_request([("x", "FP32", [1, *COMPUTE_SHAPE], raw)])
    add(
        "compute_binary",
        data,
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(header_len),
        },
    )
    return bodies


# ---------------------------------------------------------------------------------------------
# the load generator: wrk

WRK_SCRIPT = r"""
-- generated by bench/serve.py: POST one fixed body (read in binary mode) on every request
local f = assert(io.open(%(path)s, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50_us":%%d,"p75_us":%%d,"p90_us":%%d,' ..
    '"p99_us":%%d,"mean_us":%%.1f,"max_us":%%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_wrk_script(workdir: Path, body: Body) -> Path:
    headers = "\n".join(
        f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in body.headers.items()
    )
    path = workdir / f"{body.name}.lua"
    path.write_text(WRK_SCRIPT % {"path": lua_string(body.path), "headers": headers})
    return path


@dataclass
class Point:
    """One wrk run against one target at one concurrency."""

    section: str
    target: str
    model: str | None
    concurrency: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]
    non_2xx: int
    wrk_cpu: float  # fraction of one CPU the generator used
    server_cpu: float  # fraction of one CPU the server used (all threads)
    loop_cpu: float  # ... of which its main thread: the event loop (HTTP, codecs, batcher)
    other_cpu: float  # everything else on the machine (other users' work), fraction of one CPU
    batches: int | None = None
    mean_batch: float | None = None  # items per batch the server ran (inferd_batch_size)
    model_ms: float | None = None  # mean model-stage time per item = its batch's run time
    queue_ms: float | None = None  # mean time an item waited for its batch to start
    notes: list[str] = field(default_factory=list)


def run_wrk(url: str, script: Path, concurrency: int, seconds: float) -> tuple[dict[str, Any], str]:
    argv = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    output = proc.stdout + proc.stderr
    match = re.search(r"^WRKJSON (\{.*\})$", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not match:
        raise BenchError(f"wrk failed (exit {proc.returncode}) against {url}:\n{output}")
    summary = json.loads(match.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    summary["non_2xx_text"] = int(non_2xx.group(1)) if non_2xx else 0
    return summary, output


_SERIES = re.compile(
    r"^(inferd_batch_size|inferd_stage_seconds)_(sum|count)\{([^}]*)\}\s+(\S+)$", re.MULTILINE
)


def scrape(server: Server) -> dict[tuple[str, str], tuple[float, float]]:
    """(model, "batch" or a stage name) -> (sum, count), from inferd's /metrics:
    inferd_batch_size (items per batch) and inferd_stage_seconds (queue, model, ...)."""
    status, _, body = http("GET", server.url + "/metrics")
    if status != 200:
        raise BenchError(f"GET /metrics answered {status}")
    stats: dict[tuple[str, str], list[float]] = {}
    for metric, kind, labels, value in _SERIES.findall(body.decode()):
        label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        what = "batch" if metric == "inferd_batch_size" else label.get("stage", "?")
        entry = stats.setdefault((label.get("model", "?"), what), [0.0, 0.0])
        entry[0 if kind == "sum" else 1] += float(value)
    return {key: (s, c) for key, (s, c) in stats.items()}


def mean_between(
    before: dict[tuple[str, str], tuple[float, float]],
    after: dict[tuple[str, str], tuple[float, float]],
    key: tuple[str, str],
) -> tuple[float | None, int]:
    s0, c0 = before.get(key, (0.0, 0.0))
    s1, c1 = after.get(key, (0.0, 0.0))
    count = int(c1 - c0)
    return ((s1 - s0) / count if count else None), count


class Runner:
    def __init__(
        self, workdir: Path, duration: float, warmup: float, quiet_s: float = 0.0, log: bool = True
    ) -> None:
        self.quiet_s = quiet_s
        self.workdir = workdir
        self.duration = duration
        self.warmup = warmup
        self.points: list[Point] = []
        self.log = log
        self._scripts: dict[str, Path] = {}

    def point(
        self,
        section: str,
        target: str,
        server: Server,
        path: str,
        body: Body,
        concurrency: int,
        model: str | None = None,
    ) -> Point:
        script = self._scripts.get(body.name)
        if script is None:
            script = self._scripts[body.name] = write_wrk_script(self.workdir, body)
        url = server.url + path
        if self.quiet_s > 0:
            wait_quiet(self.quiet_s)
        if self.warmup > 0:
            run_wrk(url, script, concurrency, self.warmup)
            time.sleep(0.3)  # let requests cut off by the end of the warm-up drain
        before = scrape(server) if model else {}
        busy0, wrk0, srv0, loop0 = (
            cpu_busy_seconds(),
            children_cpu_seconds(),
            process_cpu_seconds(server.pid),
            thread_cpu_seconds(server.pid),
        )
        summary, output = run_wrk(url, script, concurrency, self.duration)
        busy1, wrk1, srv1, loop1 = (
            cpu_busy_seconds(),
            children_cpu_seconds(),
            process_cpu_seconds(server.pid),
            thread_cpu_seconds(server.pid),
        )
        if not server.alive():
            raise BenchError(f"{server.name} died during the run:\n{server.tail()}")
        seconds = summary["duration_us"] / 1e6
        wrk_cpu, srv_cpu = (wrk1 - wrk0) / seconds, (srv1 - srv0) / seconds
        other = max(0.0, (busy1 - busy0) / seconds - wrk_cpu - srv_cpu)
        errors = {k: summary[k] for k in ("connect", "read", "write", "timeout")}
        non_2xx = max(summary["status"], summary["non_2xx_text"])
        point = Point(
            section=section,
            target=target,
            model=model,
            concurrency=concurrency,
            duration_s=seconds,
            requests=summary["requests"],
            rps=summary["requests"] / seconds,
            p50_ms=summary["p50_us"] / 1000,
            p75_ms=summary["p75_us"] / 1000,
            p90_ms=summary["p90_us"] / 1000,
            p99_ms=summary["p99_us"] / 1000,
            mean_ms=summary["mean_us"] / 1000,
            max_ms=summary["max_us"] / 1000,
            errors=errors,
            non_2xx=non_2xx,
            wrk_cpu=wrk_cpu,
            server_cpu=srv_cpu,
            loop_cpu=(loop1 - loop0) / seconds,
            other_cpu=other,
        )
        if model:
            time.sleep(0.3)
            after = scrape(server)
            point.mean_batch, point.batches = mean_between(before, after, (model, "batch"))
            model_s, _ = mean_between(before, after, (model, "model"))
            queue_s, _ = mean_between(before, after, (model, "queue"))
            point.model_ms = model_s * 1000 if model_s is not None else None
            point.queue_ms = queue_s * 1000 if queue_s is not None else None
        if non_2xx or summary["requests"] == 0:
            raise BenchError(
                f"{target} c={concurrency}: {non_2xx} non-2xx answers out of "
                f"{summary['requests']}; every answer must be 200. Server log:\n{server.tail()}"
                f"\nwrk output:\n{output}"
            )
        # Socket errors other than the connections wrk itself cuts at the end are failures.
        if (
            errors["connect"]
            or errors["write"]
            or errors["timeout"]
            or errors["read"] > concurrency
        ):
            raise BenchError(f"{target} c={concurrency}: socket errors {errors}\n{output}")
        self.points.append(point)
        if self.log:
            batch = f" batch {point.mean_batch:5.1f}" if point.mean_batch else ""
            print(
                f"  {target:<24} c={concurrency:<3} {point.rps:9.1f} req/s  p50 "
                f"{point.p50_ms:7.2f} ms  p99 {point.p99_ms:7.2f} ms  cpu wrk {wrk_cpu:4.0%} "
                f"server {srv_cpu:4.0%} (loop {point.loop_cpu:4.0%}) other {other:4.0%}{batch}",
                flush=True,
            )
        return point


# ---------------------------------------------------------------------------------------------
# checks before load


def check_infer(server: Server, path: str, body: Body) -> dict[str, Any]:
    status, _, reply = http("POST", server.url + path, body.data, body.headers)
    if status != 200:
        raise BenchError(f"{server.name} {path} answered {status}: {reply[:500]!r}")
    return dict(json.loads(reply))


def output(reply: dict[str, Any], name: str) -> Any:
    for tensor in reply.get("outputs", []):
        if tensor["name"] == name:
            return tensor["data"]
    raise BenchError(f"reply has no output {name!r}: {reply}")


# ---------------------------------------------------------------------------------------------
# figures


@dataclass
class Figure:
    section: str
    name: str
    value: float | None
    unit: str
    target: str | None = None  # e.g. ">= 0.70"
    verdict: str | None = None  # PASS / MISS / None (informational)


def judge(value: float | None, op: str, threshold: float) -> str:
    if value is None:
        return "MISS"
    ok = value >= threshold if op == ">=" else value <= threshold
    return "PASS" if ok else "MISS"


def figure(
    section: str,
    name: str,
    value: float | None,
    unit: str,
    op: str | None = None,
    threshold: float | None = None,
    fmt: str = "{:.2f}",
) -> Figure:
    if op is None or threshold is None:
        return Figure(section, name, value, unit)
    return Figure(
        section, name, value, unit, f"{op} {fmt.format(threshold)}", judge(value, op, threshold)
    )


# ---------------------------------------------------------------------------------------------
# printing


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.0%}"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit in ("req/s", "items/s", "req/cpu-s"):
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def points_table(points: list[Point]) -> str:
    rows = [
        [
            p.target,
            str(p.concurrency),
            f"{p.rps:,.0f}",
            f"{p.p50_ms:.2f}",
            f"{p.p99_ms:.2f}",
            f"{p.mean_batch:.1f}" if p.mean_batch else "-",
            f"{p.model_ms:.2f}" if p.model_ms is not None else "-",
            f"{p.queue_ms:.2f}" if p.queue_ms is not None else "-",
            f"{p.wrk_cpu:.0%}",
            f"{p.server_cpu:.0%}",
            f"{p.loop_cpu:.0%}",
            f"{p.other_cpu:.0%}",
        ]
        for p in points
    ]
    headers = [
        "target",
        "c",
        "req/s",
        "p50 ms",
        "p99 ms",
        "batch",
        "model ms",
        "queue ms",
        "wrk cpu",
        "srv cpu",
        "loop",
        "other",
    ]
    return table(headers, rows)


def figures_table(figures: list[Figure]) -> str:
    rows = [
        [f.name, fmt_value(f.value, f.unit), f.target or "", f.verdict or "(info)"] for f in figures
    ]
    return table(["figure", "value", "target", "verdict"], rows, "lrll")


# ---------------------------------------------------------------------------------------------
# the run


def check_wrk() -> None:
    if shutil.which("wrk") is None:
        sys.exit(
            "bench/serve.py needs wrk (the HTTP load generator) on PATH.\n"
            "Install it with:  apt-get update && apt-get install -y wrk   (Debian/Ubuntu)\n"
            "               or brew install wrk                            (macOS)"
        )


def find_point(points: list[Point], target: str, concurrency: int) -> Point | None:
    for p in points:
        if p.target == target and p.concurrency == concurrency:
            return p
    return None


def log_raw(label: str, point: RawPoint) -> None:
    print(
        f"  raw ORT {label:<22} batch {point.batch:<2} {point.items_per_s:8.0f} items/s  "
        f"{point.call_p50_ms:7.2f} ms/call  {point.item_ms:6.2f} ms/item",
        flush=True,
    )


def raw_sweep(session: Any, seconds: float) -> dict[int, RawPoint]:
    rng = np.random.default_rng(7)
    sweep = {}
    for batch in RAW_BATCHES:
        sweep[batch] = measure_raw(session, batch, seconds, rng)
        log_raw("sweep", sweep[batch])
    return sweep


class Bracket:
    """Raw ORT measured right before and right after a served point, so a machine whose speed
    drifts (a shared VM) compares served and raw figures taken seconds, not minutes, apart."""

    def __init__(self, session: Any, seconds: float) -> None:
        self.session = session
        self.seconds = seconds
        self.rng = np.random.default_rng(11)
        self.pairs: dict[str, list[RawPoint]] = {}

    def measure(self, key: str, batch: int) -> None:
        point = measure_raw(self.session, batch, self.seconds, self.rng)
        self.pairs.setdefault(key, []).append(point)
        log_raw(key, point)

    def items_per_s(self, key: str) -> float:
        return statistics.fmean(p.items_per_s for p in self.pairs[key])

    def call_ms(self, key: str) -> float:
        return statistics.fmean(p.call_p50_ms for p in self.pairs[key])

    def drift(self) -> float:
        """The largest before/after difference of any bracket."""
        return max(
            (abs(pair[0].items_per_s / pair[-1].items_per_s - 1) for pair in self.pairs.values()),
            default=0.0,
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_wrk()
    if not DIGITS_DIR.joinpath("model.yaml").exists() or not DIGITS_SAMPLE.exists():
        raise BenchError(
            f"the digits example is missing ({DIGITS_DIR}, {DIGITS_SAMPLE}); "
            "build it with examples/digits/train.py"
        )
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
    figures: list[Figure] = []
    started = time.monotonic()

    with (
        tempfile.TemporaryDirectory(prefix="inferd-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        repo = workdir / "repo"
        shutil.copytree(DIGITS_DIR, repo / "digits")
        model_path = build_compute_model(repo / "compute" / "1" / "model.onnx")
        write_model_yaml(repo / "compute", 32, args.threads)
        shutil.copytree(repo / "compute" / "1", repo / "compute_nobatch" / "1")
        write_model_yaml(repo / "compute_nobatch", 1, args.threads)

        compute_x = np.random.default_rng(3).standard_normal((1, *COMPUTE_SHAPE)).astype(np.float32)
        bodies = make_bodies(workdir, DIGITS_SAMPLE.read_bytes(), compute_x)
        session = ort_session(model_path, args.threads)
        expected_logits = session.run(None, {"x": compute_x})[0]
        build_trivial_model(repo / "trivial" / "1" / "model.onnx")  # no model.yaml: plain tensor
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
        port = free_port()
        inferd_bin = Path(sys.executable).with_name("inferd")
        inferd = Server(
            "inferd",
            [
                str(inferd_bin if inferd_bin.exists() else "inferd"),
                "serve",
                str(repo),
                "--port",
                str(port),
            ],
            port,
            "/v2/health/ready",
            workdir / "inferd.log",
        )
        stack.callback(inferd.stop)
        inferd.start()
        digits = "/v2/models/digits/infer"
        for name in ("digits_json", "digits_binary"):
            label = output(check_infer(inferd, digits, bodies[name]), "label")
            if label != ["7"]:
                raise BenchError(f"digits answered {label} for seven.png ({name}); expected 7")
        trivial = "/v2/models/trivial/infer"
        if output(check_infer(inferd, trivial, bodies["trivial_binary"]), "y") != [1, 2, 3, 4]:
            raise BenchError("the trivial model did not answer x + 1")
        for name in ("compute", "compute_nobatch"):
            reply = check_infer(inferd, f"/v2/models/{name}/infer", bodies["compute_binary"])
            served = np.asarray(output(reply, "logits"), dtype=np.float32).reshape(1, -1)
            if not np.allclose(served, expected_logits, rtol=1e-3, atol=1e-4):
                raise BenchError(f"{name} served logits differ from raw ORT's")

        print("1. tiny model: inferd", flush=True)
        for target, body in (
            ("inferd V2 JSON", "digits_json"),
            ("inferd V2 binary", "digits_binary"),
        ):
            for c in TINY_CONCURRENCY:
                runner.point("tiny", target, inferd, digits, bodies[body], c, model="digits")

        for c in (1, 64):
            runner.point(
                "tiny",
                "inferd trivial x+1 (binary)",
                inferd,
                trivial,
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
        compute, nobatch = "/v2/models/compute/infer", "/v2/models/compute_nobatch/infer"
        body = bodies["compute_binary"]

        print("2. compute-bound model: inferd, each point between two raw measurements", flush=True)
        bracket.measure("batch 1 around c=1", 1)
        runner.point("compute", "inferd compute", inferd, compute, body, 1, model="compute")
        bracket.measure("batch 1 around c=1", 1)
        best_key = f"batch {best_batch} around c=32"
        bracket.measure(best_key, best_batch)
        runner.point("compute", "inferd compute", inferd, compute, body, 32, model="compute")
        bracket.measure(best_key, best_batch)

        # -- 3. batching on vs off -------------------------------------------------------------
        print("3. batching on vs off at c=64, between two raw measurements", flush=True)
        bracket.measure("batch 1 around c=64", 1)
        bracket.measure("batch 32 around c=64", 32)
        runner.point("batching", "inferd compute", inferd, compute, body, 64, model="compute")
        runner.point(
            "batching",
            "inferd compute_nobatch",
            inferd,
            nobatch,
            body,
            64,
            model="compute_nobatch",
        )
        bracket.measure("batch 1 around c=64", 1)
        bracket.measure("batch 32 around c=64", 32)
        inferd.stop()
        del session

    points = runner.points
    # ---- figures --------------------------------------------------------------------------
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


def report(result: dict[str, Any]) -> str:
    points = [Point(**p) for p in result["points"]]
    figures = [Figure(**f) for f in result["figures"]]
    info = result["machine"]
    out = [
        "",
        "=" * 100,
        f"inferd serving benchmark — {info['date']}",
        f"machine: {info['cpu']} — {info['cpus']} CPUs; Python {info['python']}, onnxruntime "
        f"{info['onnxruntime']}, {info['wrk']}",
        f"generator: wrk, 1 thread, keep-alive; {result['settings']['warmup_s']:g} s warm-up + "
        f"{result['settings']['duration_s']:g} s per point; model threads "
        f"{result['settings']['threads']}; run took {result['elapsed_s']:.0f} s",
        "cpu columns: share of ONE CPU used by wrk / the server (all threads) / the server's "
        "event-loop thread / everything else on the machine",
        "=" * 100,
    ]
    titles = {
        "tiny": "1. tiny model (digits) over HTTP vs the bare-ASGI floor",
        "compute": "2. compute-bound model: inferd vs raw in-process ONNX Runtime",
        "batching": "3. dynamic batching on vs off at c=64",
    }
    for section, title in titles.items():
        out += ["", title, ""]
        section_points = [p for p in points if p.section == section]
        if section_points:
            out.append(points_table(section_points))
            out.append("")
        if section == "compute":
            rows = [
                [
                    str(p["batch"]),
                    f"{p['items_per_s']:,.0f}",
                    f"{p['call_p50_ms']:.2f}",
                    f"{p['item_ms']:.2f}",
                ]
                for p in result["raw_ort_sweep"]
            ]
            out.append(table(["raw ORT sweep: batch", "items/s", "ms/call", "ms/item"], rows))
            out.append("")
        if section in ("compute", "batching"):
            rows = [
                [
                    key,
                    f"{pair[0]['items_per_s']:,.0f}",
                    f"{pair[-1]['items_per_s']:,.0f}",
                    f"{pair[0]['call_p50_ms']:.2f}",
                    f"{pair[-1]['call_p50_ms']:.2f}",
                ]
                for key, pair in result["raw_ort_around_points"].items()
                if ("c=64" in key) == (section == "batching")
            ]
            out.append(
                table(
                    [
                        "raw ORT around the points",
                        "items/s before",
                        "after",
                        "ms/call before",
                        "after",
                    ],
                    rows,
                )
            )
            out.append("")
        out.append(figures_table([f for f in figures if f.section == section]))
    verdicts = [f.verdict for f in figures if f.verdict]
    out += [
        "",
        f"targets: {verdicts.count('PASS')} PASS, {verdicts.count('MISS')} MISS",
    ]
    if result["background_cpu_max"] > 0.25:
        out.append(
            f"WARNING: other processes used up to {result['background_cpu_max']:.0%} of a CPU "
            "during the run; the figures are disturbed. Rerun on a quiet machine."
        )
    return "\n".join(out)


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
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each point, wait up to this long for other processes to "
        "use under 25%% of a CPU (a shared machine); 0: don't wait",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    args.duration = args.duration or (2.0 if args.quick else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.raw_seconds = args.raw_seconds or (0.7 if args.quick else 2.0)

    # SIGTERM/SIGHUP become exceptions, so the finally blocks stop every server.
    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    try:
        result = run(args)
    except BenchError as error:
        print(f"\nbenchmark failed: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    print(report(result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / f"serve-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
