"""`runtime.device: auto`: try every device there is on a sample batch and keep the fastest
whose outputs match the CPU's.

A faster device that computes something else (lower precision than the model tolerates, a
kernel bug) is not a choice, so every candidate's outputs are checked against the reference
(the CPU) before its speed counts. The chooser takes plain callables, so it is tested with
stand-in devices; the ONNX backend hands it one session per execution provider.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from inferd.spec import TensorSpec

Feed = dict[str, np.ndarray]
Run = Callable[[Feed], Mapping[str, np.ndarray]]

RTOL = 1e-3
ATOL = 1e-3
"""Outputs match when |x - cpu| <= ATOL + RTOL * |cpu| everywhere (float outputs); other
outputs must be equal."""

SAMPLE_BATCH = 8
SAMPLE_LENGTH = 16
"""A dynamic batch dimension becomes SAMPLE_BATCH; any other dynamic one SAMPLE_LENGTH."""


@dataclass(frozen=True)
class Choice:
    """What `choose` kept, and why each other candidate was not kept."""

    name: str
    ms: dict[str, float] = field(default_factory=dict)
    """Median milliseconds per sample batch of each candidate that ran and matched."""
    rejected: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        timed = ", ".join(f"{n} {ms:.2f} ms" for n, ms in sorted(self.ms.items()))
        line = f"chose {self.name} ({timed})"
        if self.rejected:
            line += "; not " + "; not ".join(f"{n}: {why}" for n, why in self.rejected.items())
        return line


def mismatch(reference: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> str | None:
    """Why `got` does not match the reference outputs, or None when it does."""
    for name, expected in reference.items():
        if name not in got:
            return f"output {name!r} missing"
        value = np.asarray(got[name])
        if value.shape != expected.shape:
            return f"output {name!r} has shape {value.shape}, the CPU's {expected.shape}"
        if np.issubdtype(expected.dtype, np.floating):
            error = np.abs(value.astype(np.float64) - expected.astype(np.float64))
            bound = ATOL + RTOL * np.abs(expected.astype(np.float64))
            if not np.all(error <= bound):  # NaN where the CPU has a number fails too
                return f"output {name!r} differs from the CPU's by up to {np.nanmax(error):.3g}"
        elif not np.array_equal(value, expected):
            return f"output {name!r} differs from the CPU's"
    return None


def _median_ms(run: Run, feed: Feed, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(feed)
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def choose(candidates: Mapping[str, Run], reference: str, feed: Feed, repeats: int = 5) -> Choice:
    """The fastest candidate whose outputs on `feed` match those of `reference` (which is
    always kept as a fallback: a reference that fails raises)."""
    expected = candidates[reference](feed)
    ms: dict[str, float] = {}
    rejected: dict[str, str] = {}
    for name, run in candidates.items():
        try:
            got = run(feed)  # also the warm-up
            why = None if name == reference else mismatch(expected, got)
            if why is None:
                ms[name] = _median_ms(run, feed, repeats)
        except Exception as error:  # a device that cannot run the model is not a choice
            why = f"failed: {type(error).__name__}: {error}"
        if why is not None:
            rejected[name] = why
    return Choice(min(ms, key=ms.__getitem__), ms, rejected)


def sample_feed(inputs: Sequence[TensorSpec], seed: int = 0) -> Feed:
    """A batch shaped like the model's inputs: random floats, ones for integers (valid as
    token ids, masks and indices alike), text for strings."""
    rng = np.random.default_rng(seed)
    feed: Feed = {}
    for spec in inputs:
        shape = [
            d if d > 0 else (SAMPLE_BATCH if i == 0 else SAMPLE_LENGTH)
            for i, d in enumerate(spec.shape)
        ]
        kind = spec.datatype
        if kind in ("FP32", "FP64", "FP16"):
            dtype = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16}[kind]
            feed[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif kind == "BOOL":
            feed[spec.name] = np.ones(shape, dtype=np.bool_)
        elif kind == "BYTES":
            feed[spec.name] = np.full(shape, "sample", dtype=np.object_)
        else:
            feed[spec.name] = np.ones(shape, dtype=np.dtype(kind.lower()))
    return feed
