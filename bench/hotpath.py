"""inferd's own per-request cost, in process: no sockets, no load generator, little noise.

Drives the HTTP app's request handler (`App.handle`, the code every transport
calls) from N concurrent tasks on one event loop, with a real model repository, and reports
the event loop's CPU microseconds per request next to a baseline measured in the same run:
the same number of tasks doing only `orjson.loads` of the body and `orjson.dumps` of a fixed
reply (what any server that parses the JSON pays). The ratio is inferd's handler cost in
units of that floor.

    .venv/bin/python -m bench.hotpath                      # tiny x+1 model, c=1 and c=64
    .venv/bin/python -m bench.hotpath --model cnn --concurrency 32 --seconds 5

Use it to see whether a change to the hot path (codecs, dataplane, batcher, metrics) helps
before measuring over HTTP with bench/peers/run.py, whose figures move 10-30 % with the
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.harness.models import build_trivial_model
from bench.peers.workload import CNN_SHAPE, build_cnn, v2_body
from inferd.app import App, ServerConfig
from inferd.http.messages import HttpRequest


def repository(folder: Path, model: str) -> tuple[Path, bytes]:
    onnx = folder / model / "1" / "model.onnx"
    rng = np.random.default_rng(0)
    if model == "tiny":
        build_trivial_model(onnx)
        x = np.round(rng.random((1, 4)), 4)
    else:
        build_cnn(onnx)
        x = np.round(rng.random((1, *CNN_SHAPE)), 4)
    (folder / model / "model.yaml").write_text(
        f"name: {model}\n"
        "batching: {max_batch_size: 32, max_delay_ms: 0}\n"
        "runtime: {threads: 1}\n"
    )
    return folder, v2_body("x", x)


class ReadyRequest(HttpRequest):
    """A request as `inferd serve`'s HTTP server hands it over: headers parsed, body read."""

    __slots__ = ("_body", "_headers")

    def __init__(self, path: str, body: bytes) -> None:
        super().__init__("POST", path)
        self._body = body
        self._headers = {"content-type": "application/json", "content-length": str(len(body))}

    @property
    def headers(self) -> dict[str, str]:
        return self._headers

    async def body(self, limit: int) -> bytes:
        return self._body

    def cancel_on_disconnect(self, on: bool) -> None:
        pass  # the client never disconnects


def thread_cpu() -> float:
    return time.thread_time()


async def drive(
    handle: Any, concurrency: int, seconds: float, make_call: Any
) -> tuple[int, float, float]:
    """Run `concurrency` closed-loop tasks for `seconds`; requests, wall s, loop CPU s."""
    stop = False
    done = 0

    async def client() -> None:
        nonlocal done
        while not stop:
            await make_call()
            done += 1

    tasks = [asyncio.create_task(client()) for _ in range(concurrency)]
    await asyncio.sleep(min(1.0, seconds / 4))  # warm-up
    done = 0
    cpu0, wall0 = thread_cpu(), time.perf_counter()
    await asyncio.sleep(seconds)
    requests, wall, cpu = done, time.perf_counter() - wall0, thread_cpu() - cpu0
    stop = True
    await asyncio.gather(*tasks)
    return requests, wall, cpu


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder, body = repository(Path(tmp), args.model)
        server = App(ServerConfig(folder))
        await server.startup()
        try:
            path = f"/v2/models/{args.model}/infer"
            reply = b""

            async def inferd_call() -> None:
                nonlocal reply
                response = await server.handle(ReadyRequest(path, body))
                if response.status != 200:
                    raise SystemExit(f"inferd answered {response.status}: {response.body[:300]!r}")
                reply = response.body

            answer = {
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 10], "data": [0.1] * 10}]
            }

            async def floor_call() -> None:
                orjson.loads(body)
                orjson.dumps(answer)
                await asyncio.sleep(0)

            print(
                f"model {args.model}, body {len(body)} B; reply {len(reply) or '?'} B", flush=True
            )
            for c in args.concurrency:
                n_f, wall_f, cpu_f = await drive(None, c, args.seconds, floor_call)
                n_i, wall_i, cpu_i = await drive(None, c, args.seconds, inferd_call)
                us_f = cpu_f / n_f * 1e6
                us_i = cpu_i / n_i * 1e6
                print(
                    f"c={c:<3} floor {n_f / wall_f:9.0f} req/s {us_f:6.1f} us/req | "
                    f"inferd {n_i / wall_i:8.0f} req/s {us_i:6.1f} loop-us/req | "
                    f"inferd/floor cost {us_i / us_f:5.1f}x",
                    flush=True,
                )
            json.loads(reply)  # the last reply is valid JSON
        finally:
            await server.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("tiny", "cnn"), default="tiny")
    parser.add_argument(
        "--concurrency", type=lambda t: [int(x) for x in t.split(",")], default=[1, 64]
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(run(args))
    except ImportError:
        asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
