"""Where phases run: in this process, or split over worker processes and merged.

One Python process drives at most one CPU. `--workers N` starts N processes (spawned, not
forked: the parent may hold threads), each with its own event loop and its share of the
connections or of the arrival rate; the parent hands each the same phase with one start time
and merges their raw results. Progress goes through a shared array, not messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import signal
import time
import traceback
from array import array
from collections.abc import MutableSequence
from dataclasses import replace
from typing import Any, Protocol

from inferd.eventloop import loop_factory
from inferd_bench.config import BenchError
from inferd_bench.driver import Driver
from inferd_bench.http1 import Target
from inferd_bench.phase import Phase
from inferd_bench.sender import SLOTS
from inferd_bench.stats import PhaseResult, merge
from inferd_bench.workload import Workload

START_DELAY_S = 0.3  # time for every worker to receive a phase and open its connections


class Runner(Protocol):
    workers: int
    counters: MutableSequence[float]

    def run(self, phase: Phase) -> PhaseResult: ...

    def close(self) -> None: ...


class InlineRunner:
    """Every phase in this process's own event loop."""

    def __init__(self, target: Target, workload: Workload) -> None:
        self.workers = 1
        self.counters: MutableSequence[float] = array("d", [0.0] * SLOTS)
        factory, _ = loop_factory()
        self._loop = asyncio.Runner(loop_factory=factory)
        self._driver = Driver(target, workload, self.counters)

    def run(self, phase: Phase) -> PhaseResult:
        return self._loop.run(self._driver.run(phase))

    def close(self) -> None:
        self._loop.close()


class ProcessRunner:
    """N worker processes, each running its share of every phase."""

    def __init__(self, target: Target, workload: Workload, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.workers = workers
        self.counters = context.RawArray("d", workers * SLOTS)
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._processes: list[Any] = []
        try:
            for index in range(workers):
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=_worker,
                    args=(theirs, target, workload, self.counters, index),
                    name=f"inferd-bench-worker-{index}",
                    daemon=True,
                )
                process.start()
                theirs.close()
                self._pipes.append(mine)
                self._processes.append(process)
            for index in range(workers):
                self._receive(index, timeout_s=120.0)  # "ready": imports done, loop running
        except BaseException:
            self.close()
            raise

    def run(self, phase: Phase) -> PhaseResult:
        timed = replace(phase, start_at=time.perf_counter() + START_DELAY_S)
        for index, pipe in enumerate(self._pipes):
            pipe.send(timed.share(index, self.workers))
        limit = START_DELAY_S + phase.warmup_s + phase.duration_s + 2 * phase.timeout_s + 60
        if phase.requests is not None:
            limit += phase.requests * phase.timeout_s  # offline/requests: no fixed duration
        results = [self._receive(i, limit) for i in range(self.workers)]
        return merge(results)

    def _receive(self, index: int, timeout_s: float) -> Any:
        pipe, process = self._pipes[index], self._processes[index]
        deadline = time.monotonic() + timeout_s
        while not pipe.poll(0.2):
            if not process.is_alive():
                raise BenchError(f"load generator worker {index} died (exit {process.exitcode})")
            if time.monotonic() > deadline:
                raise BenchError(f"load generator worker {index} did not answer in time")
        try:
            message = pipe.recv()
        except EOFError:
            raise BenchError(f"load generator worker {index} exited") from None
        if isinstance(message, tuple) and message and message[0] == "error":
            raise BenchError(f"load generator worker {index} failed:\n{message[1]}")
        return message

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):  # a worker that died already
                pipe.send(None)
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        for pipe in self._pipes:
            pipe.close()
        self._pipes, self._processes = [], []


def _worker(
    pipe: multiprocessing.connection.Connection,
    target: Target,
    workload: Workload,
    counters: MutableSequence[float],
    index: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    factory, _ = loop_factory()
    # Workers start at different samples, so N workers do not send the same bytes in step.
    driver = Driver(target, workload, counters, slot=index, offset=index * 7919)
    with asyncio.Runner(loop_factory=factory) as loop:
        pipe.send("ready")
        while True:
            try:
                phase = pipe.recv()
            except EOFError:
                return
            if phase is None:
                return
            try:
                pipe.send(loop.run(driver.run(phase)))
            except Exception:
                pipe.send(("error", traceback.format_exc()))


def make_runner(target: Target, workload: Workload, workers: int) -> Runner:
    if workers == 1:
        return InlineRunner(target, workload)
    return ProcessRunner(target, workload, workers)
