"""The load generator's own ceiling: `inferd bench` against a server that answers instantly.

    .venv/bin/python bench/loadgen_ceiling.py                 # ~1 minute
    .venv/bin/python bench/loadgen_ceiling.py --duration 2    # quicker, noisier

A separate process serves HTTP/1.1 on 127.0.0.1 with a raw asyncio Protocol (uvloop when
installed, httptools for parsing, no framework): `GET /v2/models/instant` answers V2 metadata
(one input, x FP32[-1, 4]) and every other request a fixed small V2 reply, at once. Then
`inferd bench` runs its sweep (c = 1, 4, 16, 64) against it with 1 and with 2 workers, each
as a subprocess, exactly as a user would run it.

Both processes share this machine's cores, so absolute req/s is what the pair reaches
together. The generator's own ceiling is its throughput per CPU-second it used (req/s divided
by the generator's CPU share): what one core given wholly to it would produce. The server
samples its own CPU every 0.1 s, and its share over each measured window is printed as well,
so the table shows which side was the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar, cast

import httptools

REPLY_BODY = (
    b'{"model_name":"instant","model_version":"1","outputs":[{"name":"logits",'
    b'"datatype":"FP32","shape":[1,3],"data":[0.125,-1.5,2.25]}]}'
)
METADATA_BODY = (
    b'{"name":"instant","versions":["1"],"platform":"onnxruntime_onnx",'
    b'"inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}],'
    b'"outputs":[{"name":"logits","datatype":"FP32","shape":[-1,3]}]}'
)


def _response(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


REPLY = _response(REPLY_BODY)
METADATA = _response(METADATA_BODY)


class Instant(asyncio.Protocol):
    """Answers each request as soon as its last byte is parsed."""

    samples: ClassVar[list[tuple[float, float, int]]] = []  # (Unix time, CPU s, requests)
    requests = 0

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        assert self.transport is not None
        Instant.requests += 1
        if self.url.startswith(b"/stats"):
            body = json.dumps(Instant.samples).encode()
            self.transport.write(_response(body))
        elif self.parser.get_method() == b"GET":
            self.transport.write(METADATA)
        else:
            self.transport.write(REPLY)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def _sample_cpu() -> None:
    while True:
        Instant.samples.append((time.time(), time.process_time(), Instant.requests))
        del Instant.samples[:-6000]  # the last 10 minutes
        await asyncio.sleep(0.1)


def serve(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Instant, "127.0.0.1", port, backlog=1024)
        sampler = asyncio.ensure_future(_sample_cpu())
        async with server:
            await server.serve_forever()
        sampler.cancel()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# --- the measurement -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_view(samples: list[list[float]], window: list[float]) -> tuple[float, float] | None:
    """The server's own CPU-seconds per second and requests per second over a window, from
    its 0.1 s samples (a check on the generator's count)."""
    inside = [s for s in samples if window[0] <= s[0] <= window[1]]
    if len(inside) < 2:
        return None
    (t0, c0, n0), (t1, c1, n1) = inside[0], inside[-1]
    return ((c1 - c0) / (t1 - t0), (n1 - n0) / (t1 - t0)) if t1 > t0 else None


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU-seconds all CPUs of the machine spent busy so far (from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_sweep(url: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "inferd.cli",
        "bench",
        url,
        "--model",
        "instant",
        "--scenario",
        "sweep",
        "--concurrency",
        args.concurrency,
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--workers",
        str(workers),
        "--json",
        "-",
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"inferd bench failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the server process
    parser.add_argument("--duration", type=float, default=5.0, help="measured s per level")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--workers", default="1,2", help="generator worker counts to compare")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the instant server did not start") from None
                time.sleep(0.05)
        print(
            f"inferd bench ceiling: {time.strftime('%Y-%m-%d %H:%M %Z')}, "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.2f}; server and generator on this machine\n"
        )
        print(
            "| workers | load | req/s | p50 ms | p99 ms | generator CPU | "
            "req per generator CPU-s | server CPU | server req/s |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        best = 0.0
        others = []
        for workers in (int(w) for w in args.workers.split(",")):
            # What else ran on the machine meanwhile: busy CPU that neither the server nor
            # the bench process (with its workers) used. Above ~10 % the figures are disturbed.
            started, busy = time.monotonic(), machine_busy_s()
            server_cpu, children = (
                process_cpu_s(server.pid),
                resource.getrusage(resource.RUSAGE_CHILDREN),
            )
            result = run_sweep(url, workers, args)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            ours = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
            ours += process_cpu_s(server.pid) - server_cpu
            other = (machine_busy_s() - busy - ours) / (time.monotonic() - started)
            others.append(f"{workers} worker(s): {max(other, 0.0):.0%}")
            with urllib.request.urlopen(f"{url}/stats", timeout=10) as reply:
                samples = json.loads(reply.read())
            for point in result["points"]:
                cpu = point["generator_cpu"]
                per_cpu = point["throughput"] / cpu if cpu else 0.0
                best = max(best, per_cpu)
                seen = server_view(samples, point["window"])
                share = "?" if seen is None else f"{seen[0]:.0%}"
                counted = "?" if seen is None else f"{seen[1]:,.0f}"
                latency = point["latency_ms"] or {}
                print(
                    f"| {workers} | {point['label']} | {point['throughput']:,.0f} | "
                    f"{latency.get('p50', 0):.3f} | {latency.get('p99', 0):.3f} | "
                    f"{cpu:.0%} | {per_cpu:,.0f} | {share} | {counted} |",
                    flush=True,
                )
        print(f"\ngenerator ceiling: ~{best:,.0f} requests per CPU-second of the generator")
        print("other processes' CPU during each sweep (share of one CPU): " + ", ".join(others))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
