"""One HTTP/1.1 client connection of inferd's server (`server.py`): httptools parses, the
routes answer one request at a time, each answer goes out in one `transport.write`.

What it does: keep-alive and pipelining (answers in order, reading paused meanwhile, and
the next answer started only once the client has read the last: write back-pressure),
chunked request bodies, `Expect: 100-continue` (answered in its turn), the server's budget
(`limits.py`: a body limit enforced while reading (413, and the connection closed so the
rest is never read), header limits (431), chunk framing (400), header and body deadlines
(408)), the server's admission check on the headers before any body is read (a wrong API
key), malformed requests (400), a client that disconnects cancelling its queued work, and
idle keep-alive connections closed. inferd upgrades no connection: a request asking for one
is answered in HTTP/1.1 and the connection then closes, so bytes after it are never parsed
as a request of their own. How an answer is written (the response head, HEAD, streamed
responses in chunks) is `writing.py`, the base class of `Connection`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast
from urllib.parse import unquote

import httptools

from inferd.codecs import json_dumps
from inferd.errors import InferdError
from inferd.http.limits import HttpLimits
from inferd.http.messages import (
    Handler,
    HttpResponse,
    StreamingResponse,
    decode_content,
    too_large,
)
from inferd.http.writing import AnsweredRequest, Clock, ResponseWriter

logger = logging.getLogger("inferd.server")

LINGER_S = 1.0
"""After a refusal, what the client still sends is read and dropped for this long."""

Admit = Callable[[str, str, Mapping[str, str]], None]
"""Called with a request's method, path and headers before its body is read; raises an
`InferdError` to refuse it (the body is then never read)."""


class Server(Protocol):
    """What a connection needs of the server that accepted it."""

    handler: Handler
    admit: Admit | None
    limits: HttpLimits
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
        query: str,
        arrived: float,
    ) -> None:
        super().__init__(method, path, query, arrived)
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
        self._reading_done = False
        """Refused or upgraded: whatever else arrives is not parsed."""
        self.last_active = self._loop.time()
        # the message being parsed
        self._receiving = False
        self._arrived = 0.0
        self._deadline = 0.0
        self._headers_done = False
        self._raw_bytes = 0
        self._continue_due = False
        self._url: list[bytes] = []
        self._header_bytes = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        limit = self._service.limits.max_connections
        if len(self._service.connections) >= limit:
            self._reading_done = True
            self._send_refusal(  # overload, like a full queue: the client may retry soon
                _Refusal(429, f"the server has its limit of {limit} connections open; retry soon"),
                {"retry-after": "1"},
            )
            return
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
        if self._closing or self._reading_done:
            return
        if self._receiving:  # a request already begun: its raw bytes are counted
            self._raw_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An upgrade (h2c, WebSocket) is optional for a server, and inferd makes none:
            # the request was answered in HTTP/1.1 (`on_message_complete`), and what follows
            # it (the new protocol's bytes, or a body the parser skipped) is never parsed.
            self._reading_done = True
            return
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, InferdError):
                self._refuse(
                    cause
                    if isinstance(cause, _Refusal)
                    else _Refusal(cause.status_code, cause.message)
                )
            else:
                logger.exception("the HTTP parser's callback failed")
                self._refuse(_Refusal(500, "internal server error while reading the request"))
            return
        except httptools.HttpParserError as error:
            reason = str(error.args[0] if error.args else error) or type(error).__name__
            self._refuse(_Refusal(400, f"malformed HTTP request: {reason}"))
            return
        if self._receiving:
            self._check_framing()

    def _check_framing(self) -> None:
        """Bound the raw bytes of the request being received: a header line that never ends,
        or chunk extensions that go on without a body, are buffered or parsed for nothing."""
        limits = self._service.limits
        if not self._headers_done:
            if self._raw_bytes > limits.max_header_bytes:
                self._refuse(
                    _Refusal(
                        431,
                        f"the request's URL and headers are over {limits.max_header_bytes} bytes",
                    )
                )
        elif self._raw_bytes > limits.max_header_bytes + limits.framing_factor * max(
            self._body_size, 1024
        ):
            self._refuse(
                _Refusal(
                    400,
                    f"the chunked body's framing is over {limits.framing_factor} times its "
                    f"{self._body_size} bytes of content; send fewer, larger chunks without "
                    "extensions",
                )
            )

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._receiving = True
        self._arrived = time.monotonic()
        self._deadline = self._loop.time() + self._service.limits.header_timeout_s
        self._headers_done = False
        self._raw_bytes = 0
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
        limit = self._service.limits.max_header_bytes
        if self._header_bytes > limit:
            raise _Refusal(431, f"the request's URL and headers are over {limit} bytes")

    def on_headers_complete(self) -> None:
        limits = self._service.limits
        self._headers_done = True
        self._raw_bytes = 0
        self._deadline = self._loop.time() + limits.body_timeout_s
        declared = self._headers.get("content-length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > limits.max_body_bytes
        ):
            raise _Refusal(413, too_large(int(declared), limits.max_body_bytes).message)
        has_body = self._headers_declare_a_body()
        if has_body and self._service.admit is not None:
            url = b"".join(self._url).partition(b"?")[0].decode("latin-1")
            method = self._parser.get_method().decode("latin-1")
            self._service.admit(method, unquote(url), self._headers)
        if has_body and self._headers.get("expect", "").lower() == "100-continue":
            self._continue_due = True
            if not self.busy:
                self._send_continue()

    def _send_continue(self) -> None:
        """Ask for the body: once every answer before this request has been written."""
        self._continue_due = False
        self._deadline = self._loop.time() + self._service.limits.body_timeout_s
        assert self._transport is not None
        self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        limit = self._service.limits.max_body_bytes
        if self._body_size > limit:
            raise _Refusal(413, too_large(None, limit).message)
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        self._receiving = False
        self._continue_due = False
        if self._parser.should_upgrade() and self._headers_declare_a_body():
            raise _Refusal(
                400,
                "inferd does not upgrade connections, and a request asking for an Upgrade "
                "cannot carry a body; send it without the Upgrade header",
            )
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
            parser.should_keep_alive()
            and not self._service.stopping
            and not parser.should_upgrade(),  # the bytes after it are not HTTP/1.1
            raw_query.decode("latin-1"),
            self._arrived,
        )
        if self._task is None:
            self._start(request)
        else:
            self._queue.append(request)
            if len(self._queue) >= self._service.limits.max_pipelined:
                self._pause_reading()

    def _headers_declare_a_body(self) -> bool:
        return "transfer-encoding" in self._headers or self._headers.get(
            "content-length", "0"
        ) not in ("", "0")

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
                    # The next answer waits for the client to read this one, so a client
                    # that pipelines without reading holds at most a buffer of answers.
                    await self._drain()
        except Exception:  # the handler renders every error; this is a bug in writing
            logger.exception("failed to answer %s %s", request.method, request.path)
            request.keep_alive = False
        except asyncio.CancelledError:
            if request.disconnected or not self._service.stopping:
                raise
            # The drain's time ran out: the client is told so, not left with a closed socket.
            request.keep_alive = False
            self._send_refusal(
                _Refusal(503, "the server stopped before this request finished; retry it"),
                {"retry-after": "1"},
            )
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
        if self._continue_due:
            self._send_continue()
        if self._reading_paused and not self._reading_done:
            self._reading_paused = False
            assert self._transport is not None
            self._transport.resume_reading()

    def _refuse(self, refusal: _Refusal) -> None:
        """Answer a request the HTTP layer refuses, in order, then close the connection."""
        self._receiving = False
        self._reading_done = True
        self._pause_reading()
        if self._task is None:
            self._send_refusal(refusal)
        else:
            self._queue.append(refusal)

    def _send_refusal(self, refusal: _Refusal, headers: dict[str, str] | None = None) -> None:
        if self._closing:
            return
        assert self._transport is not None
        response = HttpResponse(
            json_dumps({"error": refusal.message}), refusal.status_code, headers=headers or {}
        )
        parts = self._head(None, response, len(response.body))
        self._transport.write(b"".join([*parts, response.body]))
        self._close_lingering()

    def _close_lingering(self) -> None:
        """Close after a refusal: half-close, then discard what the client still sends for
        `LINGER_S`. Closing at once with its bytes unread makes the kernel send a reset,
        which can destroy the answer before the client has read it."""
        transport = self._transport
        assert transport is not None
        if not transport.can_write_eof():
            self._close()
            return
        self._closing = True  # data_received discards from now on
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._loop.call_later(LINGER_S, transport.close)

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
        """Close an idle keep-alive connection; answer 408 to a request past its deadline
        (however the bytes trickle in: the deadlines are not reset by them)."""
        if self.busy or self._closing:
            return
        limits = self._service.limits
        if self._receiving and now > self._deadline:
            if self._headers_done:
                what, limit = "body", limits.body_timeout_s
            else:
                what, limit = "headers", limits.header_timeout_s
            self._refuse(_Refusal(408, f"the request's {what} did not arrive within {limit:g} s"))
        elif not self._receiving and now - self.last_active > limits.keep_alive_s:
            self._close()

    def stop_if_idle(self) -> None:
        if not self.busy and not self._receiving:
            self._close()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel("the server is stopping")
