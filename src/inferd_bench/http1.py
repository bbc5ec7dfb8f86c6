"""A deliberately small HTTP/1.1 client: one keep-alive connection, one request in flight.

A load generator must cost far less per request than the server it measures. General clients
(httpx, aiohttp) build request objects, header maps and stream wrappers for every call; here
a request is bytes encoded once and reused, the response is parsed by `httptools` (llhttp, in
C) straight from the socket callbacks, and the only per-request Python objects are a future
and a timer. Nothing but the status, the body and the body's arrival times is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools

BodyHook = Callable[[bytes], None]
"""Called with each piece of a response body as it arrives (for server-sent events)."""


class HttpClientError(Exception):
    """A request that got no complete HTTP answer; `kind` names it in error counts."""

    kind = "connection"


class ConnectError(HttpClientError):
    kind = "connect"


class ConnectionClosed(HttpClientError):
    """The server closed the connection before a whole response arrived."""

    kind = "closed"


class ProtocolError(HttpClientError):
    kind = "protocol"


class RequestTimeout(HttpClientError):
    kind = "timeout"


@dataclass(frozen=True)
class Target:
    """Where requests go: host, port, and a path prefix that every route is appended to."""

    host: str
    port: int
    prefix: str = ""
    authority: str = field(default="", compare=False)

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http":
            raise ValueError(
                f"{url}: only plain http:// is supported (the generator speaks HTTP/1.1 "
                "without TLS; benchmark behind the TLS terminator or on loopback)"
            )
        if not parts.hostname:
            raise ValueError(f"{url}: no host; write e.g. http://127.0.0.1:8000")
        try:
            port = parts.port or 80
        except ValueError:
            raise ValueError(f"{url}: the port is not a number") from None
        authority = parts.netloc.rsplit("@", 1)[-1]
        return cls(parts.hostname, port, parts.path.rstrip("/"), authority)

    @property
    def url(self) -> str:
        return f"http://{self.authority or f'{self.host}:{self.port}'}{self.prefix}"


def encode_request(
    target: Target,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> bytes:
    """The whole request as bytes, sent as they are for every use."""
    lines = [
        f"{method} {target.prefix}{path} HTTP/1.1",
        f"Host: {target.authority or target.host}",
        "User-Agent: inferd-bench",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + body


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; `request` sends pre-encoded bytes and resolves to the status.

    Keep-alive is the server's call: after a response that says close (or a server that
    hangs up while idle) `closed` turns true and the owner opens a new connection.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[int] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._hook: BodyHook | None = None
        self._body: list[bytes] = []
        self._status = 0
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the body's end is known without EOF
        self._received = False
        self.closed = False
        self.reused = False  # whether a response has completed on it already

    @classmethod
    async def open(cls, target: Target, timeout_s: float = 10.0) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: cls(loop), target.host, target.port), timeout_s
            )
        except TimeoutError:
            raise ConnectError(
                f"connecting to {target.host}:{target.port} timed out after {timeout_s:g} s"
            ) from None
        except OSError as error:
            raise ConnectError(
                f"cannot connect to {target.host}:{target.port}: {error.strerror or error}"
            ) from None
        return protocol

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ProtocolError(f"the server sent a malformed HTTP response: {error}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if exc is None and self._headers_done and not self._framed:
            self._finish()  # a body delimited by the connection's end
        elif exc is None:
            self._fail(ConnectionClosed("the server closed the connection mid-response"))
        else:
            self._fail(HttpClientError(f"the connection failed: {exc}"))

    # --- httptools callbacks --------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) in (14, 17) and name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._hook is not None:
            self._hook(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.closed = True
            if self._transport is not None:
                self._transport.close()
        self._finish()

    # --- use ------------------------------------------------------------------------------------

    def request(
        self, data: bytes, timeout_s: float | None = None, hook: BodyHook | None = None
    ) -> asyncio.Future[int]:
        """Send one request; the future gives the status once the whole response is in."""
        if self.closed or self._transport is None:
            raise ConnectionClosed("the connection is closed; open a new one")
        if self._waiter is not None and not self._waiter.done():
            raise RuntimeError("one request at a time per connection")
        waiter = self._loop.create_future()
        self._waiter = waiter
        self._hook = hook
        self._body = []
        self._status = 0
        self._headers_done = self._framed = self._received = False
        if timeout_s is not None:
            self._timer = self._loop.call_later(timeout_s, self._time_out, timeout_s)
        self._transport.write(data)
        return waiter

    @property
    def body(self) -> bytes:
        """The last response's body (empty when a hook took it)."""
        return b"".join(self._body)

    @property
    def received_any(self) -> bool:
        """Whether any byte of the current response arrived (a retry is safe only if not)."""
        return self._received

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def shut(self) -> None:
        """Close when idle, abort when a request is in flight (its waiter fails)."""
        if self._waiter is not None and not self._waiter.done():
            self._fail(ConnectionClosed("the connection was closed by the generator"))
            self.abort()
            return
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _time_out(self, timeout_s: float) -> None:
        self._timer = None
        self._fail(RequestTimeout(f"no complete response within {timeout_s:g} s"))
        self.abort()

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self.reused = True
            waiter.set_result(self._status)

    def _fail(self, error: HttpClientError) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


class Channel:
    """A stream's connection, reopened when the server closes it.

    A keep-alive connection the server closed while it sat idle fails the next request before
    any byte comes back; that request is sent once more on a new connection, as browsers and
    httpx do. Every other failure is the request's own and is raised.
    """

    def __init__(self, target: Target, connect_timeout_s: float = 10.0) -> None:
        self.target = target
        self.connect_timeout_s = connect_timeout_s
        self.connection: Connection | None = None
        self.opened = 0

    async def connect(self) -> Connection:
        if self.connection is not None:
            self.connection.abort()
        self.connection = await Connection.open(self.target, self.connect_timeout_s)
        self.opened += 1
        return self.connection

    async def send(self, data: bytes, timeout_s: float | None, hook: BodyHook | None = None) -> int:
        connection = self.connection
        if connection is None or connection.closed:
            connection = await self.connect()
        try:
            return await self._request(connection, data, timeout_s, hook)
        except HttpClientError as error:
            stale = connection.reused and not connection.received_any
            if isinstance(error, RequestTimeout | ProtocolError) or not stale:
                raise
        return await self._request(await self.connect(), data, timeout_s, hook)

    @staticmethod
    async def _request(
        connection: Connection, data: bytes, timeout_s: float | None, hook: BodyHook | None
    ) -> int:
        try:
            return await connection.request(data, timeout_s, hook)
        except asyncio.CancelledError:
            connection.abort()  # its answer may still come; it must not meet the next request
            raise

    @property
    def body(self) -> bytes:
        return self.connection.body if self.connection is not None else b""

    def close(self) -> None:
        """Close gracefully when idle; abort a request still in flight."""
        if self.connection is not None:
            self.connection.shut()
            self.connection = None
