"""The ASGI side of the HTTP transport: requests from a scope, responses as messages, and
the lifespan protocol, so inferd's routes also run under any ASGI server (and in-process
under httpx's ASGITransport in the tests). `inferd serve` itself runs `server.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from inferd.http.messages import (
    HttpRequest,
    HttpResponse,
    StreamingResponse,
    decode_content,
    send_chunks,
    too_large,
)

logger = logging.getLogger("inferd.server")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class AsgiRequest(HttpRequest):
    """A request read from an ASGI scope and its `receive` channel."""

    __slots__ = ("_headers", "_watcher", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        super().__init__(
            scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1")
        )
        self.scope = scope
        self.receive = receive
        self._headers: dict[str, str] | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in self.scope["headers"]
            }
        return self._headers

    async def body(self, limit: int) -> bytes:
        declared = self.headers.get("content-length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > limit
        ):
            raise too_large(int(declared), limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                break
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(None, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return decode_content(body, self.headers.get("content-encoding"), limit)

    def cancel_on_disconnect(self, on: bool) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        task = asyncio.current_task() if on else None
        if task is not None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(task))

    async def _watch(self, task: asyncio.Task[Any]) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True
        task.cancel("client disconnected")


def _header_list(response: HttpResponse) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", response.content_type.encode())]
    if not isinstance(response, StreamingResponse):
        headers.append((b"content-length", str(len(response.body)).encode()))
    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items())
    return headers


async def send_response(response: HttpResponse, request: AsgiRequest, send: Send) -> None:
    """Send `response` as ASGI messages; a streaming one chunk by chunk until the chunks end
    or the client disconnects."""
    start = {"type": "http.response.start", "status": response.status}
    await send({**start, "headers": _header_list(response)})
    if not isinstance(response, StreamingResponse):
        await send({"type": "http.response.body", "body": response.body})
        return

    async def write(chunk: bytes) -> None:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})

    if await send_chunks(request, response, write):
        await send({"type": "http.response.body", "body": b""})


async def serve_lifespan(
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[None]],
    shutdown: Callable[[], Awaitable[None]],
) -> None:
    """The ASGI lifespan protocol: load models before serving, drain them at the end."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await startup()
            except Exception as error:
                logger.exception("start-up failed")
                await send({"type": "lifespan.startup.failed", "message": str(error)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
