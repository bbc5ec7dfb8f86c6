"""Writing answers on one client connection of inferd's server (`connection.py`).

Owns the bytes of an HTTP/1.1 response and the pace they go out at: the status line (made
once per status), the Date header (formatted once a second, `Clock`), content-length or
chunked transfer coding, ``connection: close`` when the connection ends after it; a whole
response in one `transport.write` (the head alone for HEAD); a streamed response's chunks as
they come, waiting while the transport's buffer is full (write back-pressure:
`pause_writing`/`resume_writing`). Apart from the connection's life (parsing, pipelining,
keep-alive, limits, timers), which decides what to answer and when.
"""

from __future__ import annotations

import asyncio
import http
import time
from email.utils import formatdate
from typing import Protocol

from inferd.http.messages import HttpRequest, HttpResponse, StreamingResponse, send_chunks


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


_STATUS_LINES = {s.value: _status_line(s.value) for s in http.HTTPStatus}


class Clock:
    """The Date header, formatted once a second rather than once a response."""

    def __init__(self) -> None:
        self._second = 0
        self._header = b""

    def date_header(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._header = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._header


class ClockedServer(Protocol):
    """What the writer needs of the server: the clock of the Date header."""

    clock: Clock


class AnsweredRequest(HttpRequest):
    """A request as the writer of its answer sees it (the connection's requests are these)."""

    __slots__ = ("head_only", "keep_alive")

    head_only: bool
    """HEAD: the answer is its head alone."""
    keep_alive: bool
    """False when the connection closes after this answer (``connection: close``)."""


class ResponseWriter(asyncio.Protocol):
    """The writing side of `Connection` (its base class; `Connection.__init__` sets the state
    annotated here)."""

    _service: ClockedServer
    _loop: asyncio.AbstractEventLoop
    _transport: asyncio.Transport | None
    _closing: bool
    _writing_paused: bool
    _drained: asyncio.Future[None] | None

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _head(
        self, request: AnsweredRequest | None, response: HttpResponse, length: int | None
    ) -> list[bytes]:
        """The status line and headers; `length` None means a chunked (streamed) body."""
        parts = [
            _STATUS_LINES.get(response.status) or _status_line(response.status),
            b"content-type: ",
            response.content_type.encode("latin-1"),
            b"\r\n",
            self._service.clock.date_header(),
        ]
        if length is None:
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            parts.append(b"content-length: %d\r\n" % length)
        for name, value in response.headers.items():
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
        if request is None or not request.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return parts

    def _write(self, request: AnsweredRequest, response: HttpResponse) -> None:
        assert self._transport is not None
        parts = self._head(request, response, len(response.body))
        if not request.head_only:
            parts.append(response.body)
        self._transport.write(b"".join(parts))

    async def _stream(self, request: AnsweredRequest, response: StreamingResponse) -> None:
        """Send the chunks as they come (chunked transfer coding), at the client's pace."""
        transport = self._transport
        assert transport is not None
        transport.write(b"".join(self._head(request, response, None)))
        if request.head_only:
            await response.close()
        elif not await send_chunks(request, response, self._write_chunk):
            return
        transport.write(b"0\r\n\r\n")

    async def _write_chunk(self, chunk: bytes) -> None:
        assert self._transport is not None
        if chunk:
            self._transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        if self._writing_paused:
            await self._drain()

    async def _drain(self) -> None:
        if self._closing or not self._writing_paused:
            return
        self._drained = self._loop.create_future()
        try:
            await self._drained
        finally:
            self._drained = None
