"""What a benchmark run is asked to do: one dataclass, checked before anything starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Protocol = Literal["v2", "v2-binary", "v1", "openai"]
Scenario = Literal["single-stream", "server", "offline", "sweep"]
PROTOCOLS: tuple[Protocol, ...] = ("v2", "v2-binary", "v1", "openai")
SCENARIOS: tuple[Scenario, ...] = ("single-stream", "server", "offline", "sweep")


class BenchError(Exception):
    """A benchmark that cannot run as asked; the message says what to change."""


@dataclass
class BenchConfig:
    """One `inferd bench` run. Every field has the CLI option of the same name.

    `protocol=None` picks one from the inputs: V1 for an eval set of instances, OpenAI for
    one of prompts, V2 JSON otherwise. Without `samples` or `eval_data`, V2 requests carry
    random tensors shaped from the model's metadata and OpenAI requests a built-in prompt list.
    """

    url: str
    model: str
    protocol: Protocol | None = None
    scenario: Scenario = "sweep"
    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    duration_s: float = 10.0
    warmup_s: float = 2.0
    requests: int | None = None  # single-stream: instead of duration; offline: the batch
    rate: float | None = None  # server: a fixed arrival rate instead of a search
    p99_bound_ms: float | None = None  # server: the latency bound the search holds
    search_steps: int = 4  # server: bisection steps after the exponential growth
    max_connections: int = 256  # server/offline: connections opened at most
    timeout_s: float = 30.0
    workers: int = 1
    samples: Path | None = None  # JSONL: V2 bodies, V1 bodies, or OpenAI prompts
    eval_data: Path | None = None  # an inferd model folder, its eval/ folder, or a JSONL
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    random_samples: int = 16
    seed: int = 0
    max_tokens: int = 32
    ignore_eos: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    progress: bool = False  # a live display on stderr (when it is a terminal)

    def check(self) -> None:
        """Raise BenchError for a configuration that cannot run."""
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise BenchError(f"unknown protocol {self.protocol!r}; use one of {PROTOCOLS}")
        if self.scenario not in SCENARIOS:
            raise BenchError(f"unknown scenario {self.scenario!r}; use one of {SCENARIOS}")
        if not self.model:
            raise BenchError("name the model to benchmark (--model)")
        positive = {
            "--duration": self.duration_s,
            "--timeout": self.timeout_s,
            "--max-connections": self.max_connections,
            "--workers": self.workers,
            "--random-samples": self.random_samples,
            "--max-tokens": self.max_tokens,
        }
        for option, value in positive.items():
            if not (value > 0 and math.isfinite(value)):
                raise BenchError(f"{option} must be positive, got {value}")
        if self.warmup_s < 0:
            raise BenchError(f"--warmup cannot be negative, got {self.warmup_s}")
        if self.requests is not None and self.requests <= 0:
            raise BenchError(f"--requests must be positive, got {self.requests}")
        if not self.concurrency or any(c <= 0 for c in self.concurrency):
            raise BenchError("--concurrency needs positive levels, e.g. 1,4,16,64")
        if self.rate is not None and not self.rate > 0:
            raise BenchError(f"--rate must be positive, got {self.rate}")
        if self.p99_bound_ms is not None and not self.p99_bound_ms > 0:
            raise BenchError(f"--p99-bound-ms must be positive, got {self.p99_bound_ms}")
        if self.scenario == "server" and self.rate is None and self.p99_bound_ms is None:
            raise BenchError(
                "the server scenario needs --rate R (a fixed arrival rate) or "
                "--p99-bound-ms B (search for the highest rate whose p99 stays under B)"
            )
        if self.samples is not None and self.eval_data is not None:
            raise BenchError("give --samples or --eval, not both")
        for option, path in (("--samples", self.samples), ("--eval", self.eval_data)):
            if path is not None and not path.exists():
                raise BenchError(f"{option} {path} does not exist")


def parse_levels(text: str) -> tuple[int, ...]:
    """'1,4,16,64' → (1, 4, 16, 64)."""
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BenchError(f"{text!r} is not a list of whole numbers, e.g. 1,4,16,64") from None
    if not levels or any(level <= 0 for level in levels):
        raise BenchError(f"{text!r}: concurrency levels must be positive, e.g. 1,4,16,64")
    return levels


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """'image=1,28,28' → ('image', (1, 28, 28)): an input's full shape, batch dimension too."""
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.split(",") if d.strip())
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d < 0 for d in shape):
        raise BenchError(f"{text!r}: write an input's shape as NAME=D1,D2,..., e.g. x=1,4")
    return name, shape


def parse_header(text: str) -> tuple[str, str]:
    """'Authorization: Bearer k' → ('Authorization', 'Bearer k')."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in text for c in "\r\n"):
        raise BenchError(f"{text!r}: write a header as 'Name: value'")
    return name.strip(), value.strip()
