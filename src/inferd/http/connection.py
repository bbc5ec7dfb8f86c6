"""One HTTP/1.1 client connection of inferd's server (`server.py`): httptools parses, the
routes answer one request at a time, each answer goes out in one `transport.write`.

What it does: keep-alive and pipelining (answers in order, reading paused meanwhile),
chunked request bodies, `Expect: 100-continue`, a body limit enforced while reading (413, and
the connection closed so the rest is never read), header limits (431), malformed requests
(400), a client that disconnects cancelling its queued work, and, when the server asks, idle
keep-alive connections closed and stalled requests answered 408. How an answer is written
(the response head, HEAD, streamed responses in chunks, write back-pressure) is
`writing.py`, the base class of `Connection`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Protocol, cast
from urllib.parse import unquote

import httptools

from inferd.codecs import json_dumps
from inferd.errors import InferdError
from inferd.http.messages import (
    Handler,
    HttpResponse,
    StreamingResponse,
    decode_content,
    too_large,
)
from inferd.http.writing import AnsweredRequest, Clock, ResponseWriter

logger = logging.getLogger("inferd.server")

KEEP_ALIVE_S = 5.0
"""An idle keep-alive connection is closed after this (as uvicorn's default)."""
REQUEST_STALL_S = 60.0
"""A request whose headers or body stop arriving for this long is answered 408."""
MAX_HEADER_BYTES = 64 * 1024
MAX_PIPELINED = 16
"""Complete requests queued behind the running one before reading pauses."""


class Server(Protocol):
    """What a connection needs of the server that accepted it."""

    handler: Handler
    max_body_bytes: int
    connections: set[Connection]
    clock: Clock
    stopping: bool


class _Refusal(InferdError):
    """A request refused by the HTTP layer itself; the connection closes after the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status


class _Request(AnsweredRequest):
    """A request whose body the connection has already read in full."""

    __slots__ = ("_body", "_connection", "_headers")

    def __init__(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        connection: Connection,
        keep_alive: bool,
        query: str = "",
    ) -> None:
        super().__init__(method, path, query)
        self._headers = headers
        self._body = body
        self._connection = connection
        self.keep_alive = keep_alive
        self.head_only = method == "HEAD"

    @property
    def headers(self) -> dict[str, str]:
        return self._headers

    async def body(self, limit: int) -> bytes:
        if len(self._body) > limit:  # the connection's limit is the server's; this is a route's
            raise too_large(len(self._body), limit)
        return decode_content(self._body, self._headers.get("content-encoding"), limit)

    def cancel_on_disconnect(self, on: bool) -> None:
        self._connection.watch(self, on)


class Connection(ResponseWriter):
    """One client connection: parses requests, runs them one at a time, writes answers."""

    _service: Server

    def __init__(self, service: Server) -> None:
        self._service = service
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._queue: deque[_Request | _Refusal] = deque()
        self._task: asyncio.Task[None] | None = None
        self._current: _Request | None = None
        self.watched: asyncio.Task[Any] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._closing = False
        self._refused = False
        self.last_active = self._loop.time()
        # the message being parsed
        self._receiving = False
        self._url: list[bytes] = []
        self._header_bytes = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._service.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._service.connections.discard(self)
        if self._current is not None:
            self._current.disconnected = True
        for request in self._queue:
            if isinstance(request, _Request):
                request.disconnected = True
        self._queue.clear()
        if self.watched is not None:
            self.watched.cancel("client disconnected")
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._closing or self._refused:
            return
        self.last_active = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # An upgrade (h2c, WebSocket) is optional for a server: answer in HTTP/1.1 and
            # go on parsing whatever followed with a fresh parser.
            self._parser = httptools.HttpRequestParser(self)
            rest = data[upgrade.args[0] :] if upgrade.args else b""
            if rest:
                self.data_received(rest)
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, _Refusal):
                self._refuse(cause)
            else:
                logger.exception("the HTTP parser's callback failed")
                self._refuse(_Refusal(500, "internal server error while reading the request"))
        except httptools.HttpParserError as error:
            reason = str(error.args[0] if error.args else error) or type(error).__name__
            self._refuse(_Refusal(400, f"malformed HTTP request: {reason}"))

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._receiving = True
        self._url = []
        self._header_bytes = 0
        self._headers = {}
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _Refusal(431, f"the request's URL and headers are over {MAX_HEADER_BYTES} bytes")

    def on_headers_complete(self) -> None:
        limit = self._service.max_body_bytes
        declared = self._headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refusal(413, too_large(int(declared), limit).message)
        if self._headers.get("expect", "").lower() == "100-continue":
            assert self._transport is not None
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if self._body_size > self._service.max_body_bytes:
            raise _Refusal(413, too_large(None, self._service.max_body_bytes).message)
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        self._receiving = False
        url = self._url[0] if len(self._url) == 1 else b"".join(self._url)
        raw_path, _, raw_query = url.partition(b"?")
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        parser = self._parser
        request = _Request(
            parser.get_method().decode("latin-1"),
            path,
            self._headers,
            body,
            self,
            parser.should_keep_alive() and not self._service.stopping,
            raw_query.decode("latin-1"),
        )
        if self._task is None:
            self._start(request)
        else:
            self._queue.append(request)
            if len(self._queue) >= MAX_PIPELINED:
                self._pause_reading()

    # -- answering -----------------------------------------------------------------------

    def _start(self, request: _Request) -> None:
        self._current = request
        self._task = self._loop.create_task(self._answer(request))

    async def _answer(self, request: _Request) -> None:
        try:
            response = await self._service.handler(request)
            if self._service.stopping and not self._queue:
                request.keep_alive = False  # the last answer before the server stops
            if not request.disconnected and not self._closing:
                if isinstance(response, StreamingResponse):
                    await self._stream(request, response)
                else:
                    self._write(request, response)
        except Exception:  # the handler renders every error; this is a bug in writing
            logger.exception("failed to answer %s %s", request.method, request.path)
            request.keep_alive = False
        finally:
            self._current = None
            self._task = None
            self.watched = None
        self._next(request.keep_alive)

    def _next(self, keep_alive: bool) -> None:
        """After an answer: close, run the next pipelined request, or read again."""
        if self._closing:
            return
        self.last_active = self._loop.time()
        if not keep_alive:
            self._close()
            return
        if self._queue:
            following = self._queue.popleft()
            if isinstance(following, _Refusal):
                self._send_refusal(following)
            else:
                self._start(following)
            return
        if self._reading_paused:
            self._reading_paused = False
            assert self._transport is not None
            self._transport.resume_reading()

    def _refuse(self, refusal: _Refusal) -> None:
        """Answer a request the HTTP layer refuses, in order, then close the connection."""
        self._receiving = False
        self._refused = True
        self._pause_reading()
        if self._task is None:
            self._send_refusal(refusal)
        else:
            self._queue.append(refusal)

    def _send_refusal(self, refusal: _Refusal) -> None:
        if self._closing:
            return
        assert self._transport is not None
        response = HttpResponse(json_dumps({"error": refusal.message}), refusal.status_code)
        parts = self._head(None, response, len(response.body))
        self._transport.write(b"".join([*parts, response.body]))
        self._close()

    def watch(self, request: _Request, on: bool) -> None:
        """Cancel the task answering `request` if the client goes away (`on`), or no more."""
        task = self._task if on and request is self._current else None
        if task is not None and request.disconnected:
            task.cancel("client disconnected")
        self.watched = task

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    # -- housekeeping (the service calls these) ------------------------------------------

    @property
    def busy(self) -> bool:
        return self._task is not None or bool(self._queue)

    def tick(self, now: float) -> None:
        """Close an idle keep-alive connection; answer 408 to a request that stalled."""
        if self.busy or self._closing:
            return
        idle = now - self.last_active
        if self._receiving and idle > REQUEST_STALL_S:
            self._refuse(_Refusal(408, f"the request stalled: nothing arrived for {idle:.0f} s"))
        elif not self._receiving and idle > KEEP_ALIVE_S:
            self._close()

    def stop_if_idle(self) -> None:
        if not self.busy and not self._receiving:
            self._close()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel("the server is stopping")
