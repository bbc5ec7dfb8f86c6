"""`inferd serve --workers N`: N server processes on one port, and the supervisor over them.

One process is one event loop, and on a multi-core machine the loop (HTTP, decoding, stage 6)
is what runs out first. The supervisor binds the port (a taken port fails at once), starts
worker 0 and waits until its models serve, checks that N of them fit in memory, then starts
the rest. On Linux each worker binds the port itself with SO_REUSEPORT, so the kernel spreads
new connections over them; elsewhere they share the supervisor's listening socket.

What must be one per machine stays one: worker 0 (the primary) alone delivers the outbox,
prunes the store and runs the monitor loop; every worker writes the store (SQLite in WAL
takes one writer at a time; PostgreSQL many). A worker that dies is started again (at most
once a second while it keeps dying at start-up, then backing off to 30 s). SIGTERM or Ctrl+C
reaches the supervisor, which drains every worker at once and waits for them.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from inferd.deploy.worker import WorkerPlan, run_worker
from inferd.errors import ListenError
from inferd.http.server import bind

logger = logging.getLogger("inferd.workers")

REUSE_PORT = sys.platform.startswith("linux")
"""Whether SO_REUSEPORT spreads connections over the sockets sharing a port (on the BSDs and
macOS the last one bound takes them all, so there the workers share one socket instead)."""
STEADY_S = 10.0
"""A worker that lived this long died of something other than its start-up."""
MAX_BACKOFF_S = 30.0
MEMORY_HEADROOM = 0.9
"""The share of the available memory the workers may take."""
STOP_MARGIN_S = 5.0
"""Beyond the drain, how long stopping workers get before they are killed."""


class WorkersError(Exception):
    """The workers could not be started; the message says what to change."""


def cores() -> int:
    """The logical CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_workers(text: str) -> int:
    """`--workers`: a whole number of at least 1, or `auto` (one per core)."""
    if text.strip().lower() == "auto":
        return cores()
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"--workers is a whole number of at least 1, or auto; got {text!r}")
    return count


def thread_share(workers: int) -> int:
    """Threads each worker's models may use, so N workers do not oversubscribe the cores."""
    return max(1, cores() // workers)


@dataclass
class _Slot:
    """One worker position; its process is replaced when it dies."""

    index: int
    process: BaseProcess | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None


class Supervisor:
    """Starts, watches, restarts and stops the workers; `run` is the whole of it."""

    def __init__(self, plan: WorkerPlan, workers: int) -> None:
        self.plan = plan
        self.count = workers
        self._context = multiprocessing.get_context("spawn")  # no threads or locks inherited
        self.flags = self._context.Array("b", workers, lock=False)
        self.slots = [_Slot(i) for i in range(workers)]
        self._stopping = 0
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT; raises WorkersError when the workers cannot start."""
        listener = bind(self.plan.host, self.plan.port, reuse_port=REUSE_PORT)
        run_dir = tempfile.mkdtemp(prefix="inferd-")  # short: a Unix socket path has ≤ 107 bytes
        try:
            if not REUSE_PORT:
                listener.listen(2048)
            port = listener.getsockname()[1]
            self.plan = replace(
                self.plan,
                port=port,
                run_dir=run_dir,
                listener=None if REUSE_PORT else listener,
            )
            previous = {
                s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)
            }
            try:
                self._serve()
            finally:
                self._stop_all()
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        finally:
            listener.close()
            shutil.rmtree(run_dir, ignore_errors=True)
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _serve(self) -> None:
        first = self.slots[0]
        self._start(first)
        while not self.flags[0]:
            assert first.process is not None
            if self._stopping:
                return
            if not first.process.is_alive():
                raise WorkersError(
                    f"worker 0 could not start (exit code {first.process.exitcode}); "
                    "its error is above"
                )
            self._wait([first.process.sentinel], 0.05)
        self._check_memory(first)
        for slot in self.slots[1:]:
            self._start(slot)
        logger.info("%d workers are starting; the server is ready when all serve", self.count)
        while not self._stopping:
            self._look_after()

    def _look_after(self) -> None:
        """Wait for a worker to die or a restart to fall due, and deal with it."""
        now = time.monotonic()
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        timeout = max(0.0, min(due) - now) if due else None
        sentinels = [s.process.sentinel for s in self.slots if s.process is not None]
        self._wait(sentinels, timeout)
        if self._stopping:
            return
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is not None and not process.is_alive():
                self._buried(slot, process, now)
            if slot.restart_at is not None and slot.restart_at <= now:
                slot.restart_at = None
                self._start(slot)

    def _buried(self, slot: _Slot, process: BaseProcess, now: float) -> None:
        self.flags[slot.index] = 0
        slot.process = None
        process.join()
        slot.failures = slot.failures + 1 if now - slot.started < STEADY_S else 1
        delay = min(MAX_BACKOFF_S, 2.0 ** (slot.failures - 1)) if slot.failures > 1 else 0.0
        logger.error(
            "worker %d (pid %s) died (%s); starting it again%s",
            slot.index,
            process.pid,
            _exit_reason(process.exitcode),
            f" in {delay:.0f} s" if delay else "",
        )
        slot.restart_at = now + delay

    def _start(self, slot: _Slot) -> None:
        process = self._context.Process(
            target=run_worker,
            args=(self.plan, slot.index, self.flags),
            name=f"inferd-worker-{slot.index}",
        )
        process.start()
        slot.process = process
        slot.started = time.monotonic()
        logger.info("worker %d started (pid %s)", slot.index, process.pid)

    def _check_memory(self, first: _Slot) -> None:
        """Refuse to start more workers than the memory can hold, from what worker 0 holds
        with its models loaded."""
        assert first.process is not None and first.process.pid is not None
        held = resident_bytes(first.process.pid)
        available = available_bytes()
        if held is None or available is None or self.count == 1:
            return
        fits = 1 + int(available * MEMORY_HEADROOM // held)
        if fits < self.count:
            raise WorkersError(
                f"--workers {self.count} needs about {_mib(held * self.count)}: each worker "
                f"holds {_mib(held)} with its models loaded, and {_mib(available)} more is "
                f"available; use --workers {fits} or fewer, or serve fewer models"
            )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping += 1
        if self._stopping > 1:  # a second Ctrl+C: the workers hurry
            self._signal_all(signal.SIGTERM)
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"!")

    def _wait(self, sentinels: list[int], timeout: float | None) -> None:
        ready = multiprocessing.connection.wait([*sentinels, self._wake_read], timeout)
        if self._wake_read in ready:
            os.read(self._wake_read, 64)

    def _signal_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, signum)

    def _stop_all(self) -> None:
        """Drain every worker at once; kill those still running after the drain's time."""
        running = [s.process for s in self.slots if s.process is not None]
        if not running:
            return
        logger.info("stopping: draining %d worker(s)", len(running))
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.plan.drain_s + STOP_MARGIN_S
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.error("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()


def serve_workers(plan: WorkerPlan, workers: int) -> None:
    """Run `workers` server processes on the plan's port until SIGTERM/SIGINT."""
    try:
        Supervisor(plan, workers).run()
    except ListenError:
        raise
    except OSError as error:
        raise WorkersError(f"cannot start the workers: {error}") from None


def resident_bytes(pid: int) -> int | None:
    """A process's resident memory (Linux), or None where it cannot be read."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def available_bytes() -> int | None:
    """Memory available for new processes: the machine's, or its container's (cgroup v2)
    when that is less; None where neither can be read."""
    found: list[int] = []
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(max(0, int(limit) - used))
    return min(found) if found else None


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"
