"""inferd's own HTTP/1.1 server: asyncio (uvloop when installed) and httptools' parser.

Why not an ASGI server: on an inference server the HTTP layer runs once per request on the
one event-loop thread that also decodes, batches and answers, so its cost caps throughput.
uvicorn's ASGI path (message dicts, a receive/send coroutine pair and a disconnect watcher
task per request) cost about as much again as the socket work itself; this server parses with
the same C parser, hands the routes a request whose body is already read, and writes each
response with one `transport.write` (`connection.py`, one client connection; `writing.py`,
its answers).

This module is the server's life: bind before the models load (a taken port fails at once),
start up, accept, look after idle and stalled connections, and on SIGINT/SIGTERM stop
gracefully: no new connections, in-flight requests finished, then the models drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import signal
import socket
from collections.abc import Awaitable, Callable

from inferd.errors import ListenError, StartupError
from inferd.eventloop import loop_factory
from inferd.http.connection import Admit, Connection
from inferd.http.limits import DRAIN_S, HttpLimits
from inferd.http.messages import Handler
from inferd.http.writing import Clock

logger = logging.getLogger("inferd.server")

TICK_S = 1.0
"""How often idle and stalled connections are looked for."""


class HttpService:
    """Runs the handler on a socket until SIGINT/SIGTERM, with start-up and drain around it."""

    def __init__(
        self,
        handler: Handler,
        *,
        startup: Callable[[], Awaitable[None]],
        shutdown: Callable[[float | None], Awaitable[None]],
        limits: HttpLimits,
        admit: Admit | None = None,
        drain_s: float = DRAIN_S,
    ) -> None:
        self.handler = handler
        self.admit = admit
        """Checks a request's headers before its body is read (the API key)."""
        self._startup = startup
        self._shutdown = shutdown
        self.limits = limits
        self.drain_s = drain_s
        self.connections: set[Connection] = set()
        self.clock = Clock()
        self.stopping = False
        self._stop = asyncio.Event()
        self.serving = asyncio.Event()
        """Set once the models are loaded and connections are accepted."""

    def run(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Serve on host:port until a stop signal (the whole life of `inferd serve`, or of
        one of its `--workers`, which share the port with `reuse_port`)."""
        # Bound before the models load, so a port already taken fails at once.
        self.run_on(bind(host, port, reuse_port=reuse_port))

    def run_on(self, sock: socket.socket) -> None:
        """Serve on a bound socket until a stop signal, then close it (a worker given its
        supervisor's listening socket where the OS has no SO_REUSEPORT)."""
        try:
            with asyncio.Runner(loop_factory=loop_factory()[0]) as runner:
                runner.run(self._serve_until_signalled(sock))
        finally:
            sock.close()

    async def _serve_until_signalled(self, sock: socket.socket) -> None:
        """`serve` as the process's owner: stop on signals, and tune the collector once the
        models are loaded."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
                loop.add_signal_handler(signum, self.stop)
        serving = loop.create_task(self.serve(sock))
        started = loop.create_task(self.serving.wait())
        await asyncio.wait([serving, started], return_when=asyncio.FIRST_COMPLETED)
        if started.done():
            settle_garbage_collector()
        started.cancel()
        await serving

    async def serve(self, sock: socket.socket) -> None:
        """Start up, serve on the bound `sock` until `stop()`, drain, shut down."""
        loop = asyncio.get_running_loop()
        try:
            await self._startup()
        except Exception as error:
            logger.exception("start-up failed")
            raise StartupError(f"start-up failed: {error}") from error
        drain_until: float | None = None
        try:
            server = await loop.create_server(lambda: Connection(self), sock=sock, backlog=2048)
            host, port = sock.getsockname()[:2]
            logger.info("inferd is serving on http://%s:%d (Ctrl+C to stop)", _host(host), port)
            ticker = loop.create_task(self._tick(loop))
            self.serving.set()
            await self._stop.wait()
            ticker.cancel()
            drain_until = loop.time() + self.drain_s
            await self._drain(server, drain_until)
        finally:
            await self._shut_down_by(drain_until)

    async def _shut_down_by(self, deadline: float | None) -> None:
        """Shut down: the models' queues get what is left of the drain's time (when
        stopping)."""
        now = asyncio.get_running_loop().time()
        await self._shutdown(None if deadline is None else max(0.0, deadline - now))

    def stop(self) -> None:
        """Begin a graceful stop (what SIGINT/SIGTERM do); a second call hurries it."""
        if self.stopping:
            logger.warning("stopping now: cancelling the requests still running")
            for connection in list(self.connections):
                connection.cancel()
            return
        logger.info("stopping: finishing the requests in flight")
        self.stopping = True
        self._stop.set()

    async def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            for connection in list(self.connections):
                connection.tick(now)

    async def _drain(self, server: asyncio.Server, deadline: float) -> None:
        """Stop listening, close idle connections, let the busy ones finish (or cancel them
        at the deadline); then the models can be drained."""
        server.close()
        loop = asyncio.get_running_loop()
        while self.connections and loop.time() < deadline:
            for connection in list(self.connections):
                connection.stop_if_idle()
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.cancel()
        deadline = loop.time() + 1.0
        while any(c.busy for c in self.connections) and loop.time() < deadline:
            await asyncio.sleep(0.01)


GC_THRESHOLDS = (20_000, 20, 100)
"""The collector's generation thresholds while serving (CPython's default is 700, 10, 10)."""


def settle_garbage_collector() -> None:
    """Keep the cyclic garbage collector out of the latency tail.

    Under load a request allocates a few dozen short-lived containers; with CPython's
    defaults the collector ran every ~100 requests and, every few seconds, walked the whole
    heap left by loading the models (modules, ONNX sessions, tokenizers): pauses of 50-150 ms
    that set p99. Freezing what start-up left moves it out of every later collection, and a
    larger first threshold lets most request garbage die before a collection sees it.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening-ready TCP socket on host:port, with an error that says what to do.

    With `reuse_port` (SO_REUSEPORT) several processes bind the same port and the kernel
    spreads new connections over those listening: each `--workers` process has its own."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ListenError(f"cannot resolve --host {host!r}: {error}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ListenError(
            f"cannot listen on {host}:{port}: {error.strerror}; pick another --port "
            "or stop what is using it"
        ) from None
    return sock


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is this machine's own (127.0.0.0/8, ::1)."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return bool(found) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in found
    )


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
