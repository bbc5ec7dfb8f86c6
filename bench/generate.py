"""Generation benchmark: continuous batching against one-at-a-time `transformers.generate`.

    .venv/bin/python -m bench.generate                      # pycoder, about 1 minute
    .venv/bin/python -m bench.generate --rounds 2           # quicker, noisier

In ONE run, on the same machine:

1. `inferd serve` on the model's repository; for 1, 4 and 16 concurrent streams, each
   stream sends streaming `/v1/completions` requests one after another (prompts from the
   model's `eval/prompts.jsonl`, greedy, `ignore_eos`, a fixed `max_tokens`); the streams'
   starts are spread over one single-stream request time, as independent users' would be
   (so the time to first token is that of joining a running batch). Measured per
   level: aggregate generated tokens/s (completion tokens over wall time), time to first
   token p50/p99 (request sent → first text chunk), inter-token latency p50.
2. The same 16 prompts through plain `transformers` `model.generate` in this process, one
   after another (greedy, exactly `max_tokens` new tokens): tokens/s.

Both are repeated in `--rounds` rounds (default 5), each measuring every level and the
baseline back to back; each ratio is taken within a round and the median over the rounds is
the result (this VM's speed drifts by tens of percent within a minute).

Targets (issue 4): aggregate tokens/s at 16 streams ≥ 5x 1 stream and ≥ 3x sequential
`generate`; TTFT p50 at 16 streams ≤ 3x the idle (1-stream) TTFT p50. The server is a
subprocess on a free 127.0.0.1 port, stopped on exit. Results also go to
bench/results/generate-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.harness import RESULTS, ROOT
from bench.harness.servers import Server, free_port  # the same server handling as the others

STREAMS = (1, 4, 16)


@dataclass
class Level:
    streams: int
    requests: int = 0
    tokens: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    inter_token: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @staticmethod
    def merged(levels: list[Level]) -> Level:
        """Several runs of one level as one: their tokens over their summed time."""
        total = Level(levels[0].streams)
        for level in levels:
            total.requests += level.requests
            total.tokens += level.tokens
            total.seconds += level.seconds
            total.ttft += level.ttft
            total.inter_token += level.inter_token
        return total

    def row(self) -> dict[str, Any]:
        ttft = np.asarray(self.ttft) * 1000
        itl = np.asarray(self.inter_token) * 1000
        return {
            "streams": self.streams,
            "requests": self.requests,
            "tokens": self.tokens,
            "tokens_per_s": round(self.tokens_per_s, 1),
            "ttft_p50_ms": round(float(np.percentile(ttft, 50)), 1) if ttft.size else None,
            "ttft_p99_ms": round(float(np.percentile(ttft, 99)), 1) if ttft.size else None,
            "itl_p50_ms": round(float(np.percentile(itl, 50)), 2) if itl.size else None,
        }


async def one_stream(
    http: httpx.AsyncClient, model: str, prompt: str, max_tokens: int, level: Level
) -> None:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sent = time.perf_counter()
    previous: float | None = None
    async with http.stream("POST", "/v1/completions", json=body) as reply:
        if reply.status_code != 200:
            raise RuntimeError(f"{reply.status_code}: {await reply.aread()!r}")
        async for line in reply.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            now = time.perf_counter()
            if chunk.get("usage"):
                level.tokens += chunk["usage"]["completion_tokens"]
            elif chunk["choices"] and chunk["choices"][0]["text"]:
                if previous is None:
                    level.ttft.append(now - sent)
                else:
                    level.inter_token.append(now - previous)
                previous = now
    level.requests += 1


async def run_level(
    url: str,
    model: str,
    prompts: list[str],
    streams: int,
    per_stream: int,
    max_tokens: int,
    stagger_s: float = 0.0,
) -> Level:
    level = Level(streams)
    limits = httpx.Limits(max_connections=streams + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        await one_stream(http, model, prompts[0], 4, Level(1))  # warm-up

        async def stream(index: int) -> None:
            # Independent users do not all press enter at the same instant: stream i starts
            # i/streams of one request's time later, so arrivals are spread as in steady use.
            await asyncio.sleep(stagger_s * index / streams)
            for k in range(per_stream):
                prompt = prompts[(index * per_stream + k) % len(prompts)]
                await one_stream(http, model, prompt, max_tokens, level)

        started = time.perf_counter()
        await asyncio.gather(*(stream(i) for i in range(streams)))
        level.seconds = time.perf_counter() - started
    return level


class SequentialGenerate:
    """The same prompts through plain transformers, one after another, on as many torch
    threads as the served model (on this 2-core VM two threads make it 5x slower, not faster)."""

    def __init__(self, folder: Path, threads: int) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.model = AutoModelForCausalLM.from_pretrained(folder)
        self.model.eval()

    def run(self, prompts: list[str], max_tokens: int) -> Level:
        import torch

        level = Level(streams=1)
        with torch.inference_mode():
            self._generate(prompts[0], 4)  # warm-up
            started = time.perf_counter()
            for prompt in prompts:
                level.tokens += self._generate(prompt, max_tokens)
                level.requests += 1
            level.seconds = time.perf_counter() - started
        return level

    def _generate(self, prompt: str, max_tokens: int) -> int:
        import torch

        ids = torch.tensor([self.tokenizer.encode(prompt).ids])
        out = self.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=self.model.config.eos_token_id,
        )
        return int(out.shape[1] - ids.shape[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--model", default="pycoder")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--per-stream", type=int, default=0, help="requests per stream")
    parser.add_argument("--rounds", type=int, default=5, help="repeats of every level")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the baseline (model.yaml's)"
    )
    args = parser.parse_args()

    folder = args.repo / args.model
    versions = sorted((int(p.name) for p in folder.iterdir() if p.name.isdigit()), reverse=True)
    weights = folder / str(versions[0])
    prompts_file = folder / "eval" / "prompts.jsonl"
    prompts = [json.loads(line)["prompt"] for line in prompts_file.read_text().splitlines()]
    prompts = (prompts * 16)[:16]

    print(
        f"inferd generation benchmark — {time.strftime('%Y-%m-%d %H:%M')} — "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(f"model {args.model}, {args.max_tokens} new tokens per request, greedy, ignore_eos\n")

    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"inferd-bench-generate-{port}.log"
    argv = [sys.executable, "-m", "inferd.cli", "serve", str(args.repo), "--port", str(port)]
    server = Server("inferd", argv, port, "/v2/health/ready", log)
    baseline = SequentialGenerate(weights, args.threads)
    server.start(timeout_s=120)
    levels: dict[int, list[Level]] = {streams: [] for streams in STREAMS}
    sequential: list[Level] = []
    try:
        # This machine's speed drifts by tens of percent within a minute, so each round
        # measures every level and the baseline back to back, a ratio is taken within each
        # round, and the median ratio over the rounds is reported.
        for _ in range(args.rounds):
            request_s = 0.0
            for streams in STREAMS:
                # Each stream sends several requests so that most of the level's time is spent
                # at full concurrency, not in the staggered start and the stragglers' tail.
                per_stream = args.per_stream or {1: 8, 4: 4, 16: 4}[streams]
                level = asyncio.run(
                    run_level(
                        f"http://127.0.0.1:{port}",
                        args.model,
                        prompts,
                        streams,
                        per_stream,
                        args.max_tokens,
                        request_s,
                    )
                )
                if streams == 1:
                    request_s = level.seconds / level.requests
                levels[streams].append(level)
            sequential.append(baseline.run(prompts, args.max_tokens))
    finally:
        server.stop()

    for streams in STREAMS:
        row = Level.merged(levels[streams]).row()
        print(
            f"  {streams:>2} streams: {row['tokens_per_s']:>8.1f} tok/s  "
            f"TTFT p50 {row['ttft_p50_ms']} ms p99 {row['ttft_p99_ms']} ms  "
            f"ITL p50 {row['itl_p50_ms']} ms  ({row['requests']} requests)"
        )
    generate_row = Level.merged(sequential).row()
    print(
        f"  transformers generate, 16 prompts one after another: "
        f"{generate_row['tokens_per_s']} tok/s\n"
    )

    rounds = list(zip(levels[1], levels[16], sequential, strict=True))
    checks = [
        (
            "16 streams vs 1 stream, tok/s",
            [sixteen.tokens_per_s / one.tokens_per_s for one, sixteen, _ in rounds],
            5.0,
            True,
        ),
        (
            "16 streams vs sequential generate, tok/s",
            [sixteen.tokens_per_s / plain.tokens_per_s for _, sixteen, plain in rounds],
            3.0,
            True,
        ),
        (
            "TTFT p50 at 16 streams vs idle",
            [float(np.median(sixteen.ttft) / np.median(one.ttft)) for one, sixteen, _ in rounds],
            3.0,
            False,
        ),
    ]
    for name, values, target, higher in checks:
        value = float(np.median(values))
        verdict = "PASS" if (value >= target if higher else value <= target) else "MISS"
        sign = ">=" if higher else "<="
        spread = " ".join(f"{v:.2f}" for v in values)
        print(f"  {name}: {value:.2f}x (target {sign} {target}x) {verdict}  [rounds: {spread}]")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"generate-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "rounds": args.rounds,
                "levels": [Level.merged(levels[streams]).row() for streams in STREAMS],
                "transformers_sequential": generate_row,
                "ratios": {
                    name: {
                        "median": round(float(np.median(values)), 3),
                        "rounds": [round(v, 3) for v in values],
                    }
                    for name, values, _, _ in checks
                },
            },
            indent=2,
        )
    )
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
