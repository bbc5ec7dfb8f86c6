"""What the benchmark scripts share: starting servers, CPU accounting, the benchmark models,
raw ONNX Runtime, wrk, tables and results. Here: where things are, and the one error a run
stops on."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"


class BenchError(RuntimeError):
    """A run that cannot give trustworthy numbers (server died, non-2xx answers, ...)."""


__all__ = ["BENCH", "RESULTS", "ROOT", "BenchError"]
