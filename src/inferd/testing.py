"""`FakeBackend`: the one test double for a model, so tests stop hand-writing their own.

It implements the `Backend` protocol with knobs for what tests need to provoke: how long a
call takes (`latency_s`, `item_latency_s`), when it fails (`fail`), what it answers
(`compute`), and a thread-safe record of the batches it ran (`batches`, `batch_sizes`), so a
test can assert how requests were batched. It is also a python-backend model: a model.py may
say `def Model(): return FakeBackend(...)`, and with `record_to` it appends each batch to a
file that a test reads (`read_record`) while the server runs in another process.

Only numpy and inferd are imported: this module ships with the package.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inferd.datatypes import numpy_dtype
from inferd.spec import TensorSpec

__all__ = ["FakeBackend", "FakeModelError", "read_record"]

Inputs = dict[str, np.ndarray]
Compute = Callable[[Inputs], Mapping[str, Any]]
Latency = float | Callable[[Inputs], float]
Fail = BaseException | Callable[[Inputs], bool | BaseException | None]


class FakeModelError(RuntimeError):
    """What a `FakeBackend` raises when a `fail` predicate answers True."""


def _default_inputs() -> list[TensorSpec]:
    return [TensorSpec(name="x", datatype="FP32", shape=[-1, -1])]


def _default_outputs() -> list[TensorSpec]:
    return [TensorSpec(name="y", datatype="FP32", shape=[-1, -1])]


class FakeBackend:
    """A `Backend` (and python-backend model) whose speed, failures and answers a test sets.

    Each call, in this order: is recorded (so a test sees a batch in flight), may fail, sleeps,
    then answers. Batch size is the first input's leading dimension.
    """

    def __init__(
        self,
        inputs: Sequence[TensorSpec] | None = None,
        outputs: Sequence[TensorSpec] | None = None,
        *,
        compute: Compute | Mapping[str, Any] | None = None,
        latency_s: Latency = 0.0,
        item_latency_s: float = 0.0,
        fail: Fail | None = None,
        record_to: str | os.PathLike[str] | None = None,
    ) -> None:
        """
        inputs, outputs: the declared tensors, batch dimension included (default: `x` and
            `y`, FP32 [-1, -1]).
        compute: a function of the batch's inputs returning its outputs; or fixed outputs,
            one item's value per output name, repeated for every item of the batch. Default:
            output k echoes the k-th input given (the last if there are fewer), cast to its
            declared datatype, so answers are deterministic and keep the batch dimension.
        latency_s: seconds every call sleeps, or a function of the inputs giving them.
        item_latency_s: seconds added per item of the batch, so batching shows in timings.
        fail: an exception raised on every call; or a predicate on the batch's inputs that
            answers True (raise `FakeModelError`), an exception to raise, or False/None.
            The whole batch fails, as with a real model, so a predicate on one item's
            value fails that item's batch.
        record_to: also append each batch's inputs to this file as one JSON line (see
            `read_record`), for tests whose server runs in another process.
        """
        self.inputs: list[TensorSpec] = list(inputs) if inputs is not None else _default_inputs()
        self.outputs: list[TensorSpec] = (
            list(outputs) if outputs is not None else _default_outputs()
        )
        self._compute = compute
        self._latency_s = latency_s
        self._item_latency_s = item_latency_s
        self._fail = fail
        self._record_to = Path(record_to) if record_to is not None else None
        self._lock = threading.Lock()
        self._batches: list[Inputs] = []
        self.closes = 0
        """How many times close() was called: a test can check it is exactly once."""

    # --- the Backend protocol -----------------------------------------------------------

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Record the batch, then fail, sleep and answer as configured."""
        if self.closes:
            raise RuntimeError("FakeBackend.run called after close()")
        size = _batch_size(inputs)
        self._record(inputs)
        self._maybe_fail(inputs)
        latency = self._latency_s(inputs) if callable(self._latency_s) else self._latency_s
        delay = latency + self._item_latency_s * size
        if delay > 0:
            time.sleep(delay)
        return self._answer(inputs, size)

    def close(self) -> None:
        self.closes += 1

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The python backend calls its model: this makes FakeBackend one."""
        return self.run(inputs)

    # --- what tests read ----------------------------------------------------------------

    @property
    def batches(self) -> list[Inputs]:
        """Copies of the inputs of every call so far, oldest first."""
        with self._lock:
            return list(self._batches)

    @property
    def batch_sizes(self) -> list[int]:
        """The batch size of every call so far, oldest first."""
        return [_batch_size(batch) for batch in self.batches]

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self._batches)

    @property
    def closed(self) -> bool:
        return self.closes > 0

    # --- internals ----------------------------------------------------------------------

    def _record(self, inputs: Inputs) -> None:
        copies = {name: np.array(value, copy=True) for name, value in inputs.items()}
        with self._lock:
            self._batches.append(copies)
            if self._record_to is not None:
                line = {name: value.tolist() for name, value in copies.items()}
                with self._record_to.open("a", encoding="utf-8") as record:
                    record.write(json.dumps(line, default=_jsonable) + "\n")

    def _maybe_fail(self, inputs: Inputs) -> None:
        if self._fail is None:
            return
        if isinstance(self._fail, BaseException):
            raise self._fail.with_traceback(None)
        verdict = self._fail(inputs)
        if isinstance(verdict, BaseException):
            raise verdict
        if verdict:
            raise FakeModelError("the fake model fails on this batch on purpose")

    def _answer(self, inputs: Inputs, size: int) -> dict[str, np.ndarray]:
        if callable(self._compute):
            return {name: np.asarray(value) for name, value in self._compute(inputs).items()}
        if self._compute is not None:
            return {
                name: np.repeat(np.asarray(value)[np.newaxis], size, axis=0)
                for name, value in self._compute.items()
            }
        given = list(inputs.values())
        if not given:
            raise ValueError("FakeBackend echoes its inputs by default, and it was given none")
        echoed = [given[min(k, len(given) - 1)] for k in range(len(self.outputs))]
        return {
            spec.name: np.asarray(value).astype(numpy_dtype(spec.datatype))
            for spec, value in zip(self.outputs, echoed, strict=True)
        }


def _batch_size(inputs: Inputs) -> int:
    first = next(iter(inputs.values()), None)
    return 1 if first is None or np.ndim(first) == 0 else int(np.shape(first)[0])


def _jsonable(value: object) -> object:
    """BYTES tensors hold bytes, which JSON cannot: record them as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot record a {type(value).__name__} in a FakeBackend record")


def read_record(path: str | os.PathLike[str]) -> list[dict[str, np.ndarray]]:
    """The batches a `FakeBackend(record_to=path)` ran, oldest first ([] before the first).

    A line still being written (no newline yet) is left for the next read.
    """
    file = Path(path)
    if not file.exists():
        return []
    *lines, _unfinished = file.read_text(encoding="utf-8").split("\n")
    return [
        {name: np.asarray(value) for name, value in json.loads(line).items()}
        for line in lines
        if line.strip()
    ]
