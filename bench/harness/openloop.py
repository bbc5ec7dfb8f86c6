"""A constant-rate open-loop HTTP client: requests leave on a fixed schedule whatever the
server answers, so an overloaded server sees the whole excess.

Built on inferd_bench's small HTTP/1.1 connection (httptools, one request in flight per
keep-alive connection), driven by callbacks rather than a task per request so one core keeps
up with thousands of requests a second. Every answer is kept: its status, whether it carried
Retry-After, its latency from when it was sent, and how late the generator sent it. A request
sent more than `LAG_S` after its slot (the loop was busy, every connection was in use, or a new
one was slow to open) counts as "generator lagged": the offered rate was then not quite what
was asked. One that
found no free connection for `max_wait_s` (its deadline: sending it later is pointless) is
never sent and counted as "not sent".
"""

from __future__ import annotations

import asyncio
import time
import weakref
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from bench.harness.servers import HOST
from inferd.eventloop import loop_factory
from inferd_bench.http1 import (
    BodyHook,
    ConnectError,
    Connection,
    ConnectionClosed,
    HttpClientError,
    ProtocolError,
    RequestTimeout,
    Target,
)

LAG_S = 0.010  # a request sent later than this after its slot counts as "generator lagged"
MIN_SLEEP_S = 0.001  # uvloop's timers count whole milliseconds; sleeping less spins the loop


class _RetryAfterConnection(Connection):
    """inferd_bench's connection, also noting whether each answer carried Retry-After."""

    retry_after: bytes | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        if len(name) == 11 and name.lower() == b"retry-after":
            self.retry_after = value

    def request(
        self, data: bytes, timeout_s: float | None = None, hook: BodyHook | None = None
    ) -> asyncio.Future[int]:
        self.retry_after = None
        return super().request(data, timeout_s, hook)


@dataclass
class OpenLoopResult:
    """Every request of one run, in the order answers came back."""

    rate: float
    seconds: float
    scheduled: int = 0
    statuses: array[int] = field(default_factory=lambda: array("H"))  # 0: no HTTP answer
    latencies: array[float] = field(default_factory=lambda: array("d"))  # seconds, from send
    lags: array[float] = field(default_factory=lambda: array("d"))  # seconds, send - slot
    slots: array[float] = field(default_factory=lambda: array("d"))  # seconds from the start
    retry_after: array[int] = field(default_factory=lambda: array("B"))  # 1: header present
    failures: Counter[str] = field(default_factory=Counter)  # no HTTP answer, by kind
    samples: dict[int | str, str] = field(default_factory=dict)  # one body/message per kind
    unanswered: int = 0  # still in flight when the drain gave up
    not_sent: int = 0  # waited `max_wait_s` for a free connection: dropped unsent
    connections_opened: int = 0
    generator_cpu_s: float = 0.0
    window_s: float = 0.0  # first slot to last answer

    def status_counts(self) -> Counter[int]:
        return Counter(self.statuses.tolist())

    def latencies_ms(
        self, status: int, after_s: float = 0.0
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Latencies of the answers with `status`, of requests due `after_s` or later."""
        statuses = np.frombuffer(self.statuses, dtype=np.uint16)
        values = np.frombuffer(self.latencies, dtype=np.float64)
        chosen = (statuses == status) & (np.frombuffer(self.slots, dtype=np.float64) >= after_s)
        return cast("np.ndarray[Any, np.dtype[np.float64]]", values[chosen] * 1000.0)

    def lagged(self) -> int:
        return int(np.count_nonzero(np.frombuffer(self.lags, dtype=np.float64) > LAG_S))

    def missing_retry_after(self, status: int = 429) -> int:
        statuses = np.frombuffer(self.statuses, dtype=np.uint16)
        flags = np.frombuffer(self.retry_after, dtype=np.uint8)
        return int(np.count_nonzero((statuses == status) & (flags == 0)))


def percentile(values: np.ndarray[Any, np.dtype[np.float64]], q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


class OpenLoop:
    """Sends `request` at `rate` per second for `seconds` over at most `connections`
    keep-alive connections; an arrival finding none idle waits in a backlog (and lags), for at
    most `max_wait_s`."""

    def __init__(
        self,
        port: int,
        request: bytes,
        rate: float,
        seconds: float,
        connections: int,
        max_wait_s: float,
        timeout_s: float = 30.0,
    ) -> None:
        self.target = Target(HOST, port)
        self.request = request
        self.rate = rate
        self.seconds = seconds
        self.max_connections = connections
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self.result = OpenLoopResult(rate, seconds)
        self._idle: list[_RetryAfterConnection] = []
        self._open = 0  # connections open or being opened
        self._backlog: list[float] = []  # slots waiting for a connection (oldest first)
        self._backlog_head = 0
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._start = 0.0
        self._connections: weakref.WeakSet[_RetryAfterConnection] = weakref.WeakSet()
        self._closed = False

    async def run(self) -> OpenLoopResult:
        """The whole schedule, then up to `timeout_s` for the answers still due."""
        result = self.result
        count = int(self.rate * self.seconds)
        result.scheduled = count
        interval = 1.0 / self.rate
        cpu0 = time.process_time()
        start = self._start = time.perf_counter() + 0.05
        index = 0
        while index < count:
            now = time.perf_counter()
            while index < count and start + index * interval <= now:
                self._dispatch(start + index * interval)
                index += 1
            if index < count:
                wait = start + index * interval - time.perf_counter()
                await asyncio.sleep(max(wait, MIN_SLEEP_S))
        give_up = time.perf_counter() + self.timeout_s
        while (self._in_flight or self._pending_backlog()) and time.perf_counter() < give_up:
            self._drop_stale(time.perf_counter())
            await asyncio.sleep(0.01)
        result.window_s = time.perf_counter() - start
        result.generator_cpu_s = time.process_time() - cpu0
        result.unanswered = self._in_flight + self._pending_backlog()
        self.close()
        return result

    def close(self) -> None:
        """Stop: pending connects cancelled, every connection closed (aborted if busy)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for connection in list(self._connections):
            connection.shut()
        self._idle.clear()

    # -- sending -------------------------------------------------------------------------

    def _pending_backlog(self) -> int:
        return len(self._backlog) - self._backlog_head

    def _dispatch(self, slot: float) -> None:
        while self._idle:
            connection = self._idle.pop()  # the most recently used: warm, not timed out
            if not connection.closed:
                self._send(connection, slot)
                return
            self._open -= 1
        if self._open < self.max_connections:
            self._open += 1
            self._in_flight += 1
            self._spawn(self._connect_and_send(slot))
        else:
            self._backlog.append(slot)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_and_send(self, slot: float, retried: bool = False) -> None:
        try:
            connection = cast(_RetryAfterConnection, await _RetryAfterConnection.open(self.target))
        except ConnectError as error:
            self._open -= 1
            self._in_flight -= 1
            self._record_failure(slot, time.perf_counter(), error)
            await asyncio.sleep(0.01)  # a refused connection: do not hammer a dead server
            self._next_from_backlog(None)
            return
        self.result.connections_opened += 1
        self._connections.add(connection)
        self._in_flight -= 1
        self._send(connection, slot, retried)

    def _send(self, connection: _RetryAfterConnection, slot: float, retried: bool = False) -> None:
        sent = time.perf_counter()
        self._in_flight += 1
        try:
            future = connection.request(self.request, self.timeout_s)
        except HttpClientError:  # closed between the check and now: open another instead
            self._spawn(self._connect_and_send(slot, retried))
            return
        future.add_done_callback(lambda done: self._answered(done, connection, slot, sent, retried))

    def _answered(
        self,
        done: asyncio.Future[int],
        connection: _RetryAfterConnection,
        slot: float,
        sent: float,
        retried: bool,
    ) -> None:
        if self._closed:  # aborted by close(): already counted as unanswered
            return
        self._in_flight -= 1
        now = time.perf_counter()
        error = done.exception() if not done.cancelled() else ConnectionClosed("cancelled")
        if error is None:
            result = self.result
            status = done.result()
            result.statuses.append(status)
            result.latencies.append(now - sent)
            result.lags.append(sent - slot)
            result.slots.append(slot - self._start)
            result.retry_after.append(1 if connection.retry_after is not None else 0)
            if not 200 <= status < 300 and status not in result.samples:
                result.samples[status] = connection.body.decode("utf-8", "replace")[:300]
            self._next_from_backlog(connection)
            return
        # A keep-alive connection the server closed while idle fails before any byte comes
        # back: send that request once more on a new connection (as browsers and httpx do).
        stale = (
            not isinstance(error, RequestTimeout | ProtocolError)
            and connection.reused
            and not connection.received_any
        )
        self._open -= 1
        if stale and not retried:
            self._open += 1
            self._in_flight += 1
            self._spawn(self._connect_and_send(slot, retried=True))
            return
        self._record_failure(slot, sent, cast(Exception, error))
        self._next_from_backlog(None)

    def _drop_stale(self, now: float) -> None:
        """Drop the slots that waited `max_wait_s` for a connection: counted, never sent."""
        backlog = self._backlog
        while self._backlog_head < len(backlog) and now - backlog[self._backlog_head] > (
            self.max_wait_s
        ):
            self._backlog_head += 1
            self.result.not_sent += 1

    def _next_from_backlog(self, connection: _RetryAfterConnection | None) -> None:
        """A connection is free (or one was lost): serve the oldest waiting slot, if any."""
        self._drop_stale(time.perf_counter())
        if self._pending_backlog():
            slot = self._backlog[self._backlog_head]
            self._backlog_head += 1
            if self._backlog_head > 4096:  # trim what was served
                del self._backlog[: self._backlog_head]
                self._backlog_head = 0
            if connection is not None and not connection.closed:
                self._send(connection, slot)
                return
            if connection is not None:
                self._open -= 1
            self._open += 1
            self._in_flight += 1
            self._spawn(self._connect_and_send(slot))
            return
        if connection is not None:
            if connection.closed:
                self._open -= 1
            else:
                self._idle.append(connection)

    def _record_failure(self, slot: float, sent: float, error: BaseException) -> None:
        result = self.result
        kind = error.kind if isinstance(error, HttpClientError) else type(error).__name__
        result.failures[kind] += 1
        result.samples.setdefault(kind, str(error)[:300])
        result.statuses.append(0)
        result.latencies.append(time.perf_counter() - sent)
        result.lags.append(sent - slot)
        result.slots.append(slot - self._start)
        result.retry_after.append(0)


def run_loop(main: Callable[[], Awaitable[Any]]) -> Any:
    """`main()` on inferd's event loop (uvloop where installed), as the generator runs."""
    factory, _ = loop_factory()
    loop = factory()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()
