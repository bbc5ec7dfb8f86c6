"""Raw in-process ONNX Runtime, the bound a server of the same model is measured against: a
session with inferd's options, timed back-to-back calls, and brackets around served points."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RAW_BATCHES = (1, 4, 8, 16, 32)


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
