"""Minimal ASGI plumbing for the HTTP transport: requests, responses, routes, lifespan.

inferd serves a dozen fixed routes, so a general web framework's middleware stack, URL
objects and per-request allocations cost more than they give (about a third of the event
loop's time under load). This module does only what the transport needs, directly on the
ASGI scope, and nothing here knows about models.
"""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from inferd.errors import BadRequestError, NotFoundError, PayloadTooLargeError

logger = logging.getLogger("inferd.server")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class MethodNotAllowedError(NotFoundError):
    status_code = 405

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class HttpRequest:
    """One request: method, path, route parameters, headers (lower-case) and the body."""

    __slots__ = ("_headers", "id", "method", "params", "path", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive, params: dict[str, str]) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.params = params
        self.id = ""
        """The request id: the client's X-Request-Id, or one the server makes."""
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in self.scope["headers"]
            }
        return self._headers

    async def body(self, limit: int) -> bytes:
        """The whole body, refusing (413) one over `limit` bytes before reading it all."""
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(
                f"request body is {int(declared)} bytes, over the server's limit of {limit}; "
                "send fewer items per request or start the server with a larger --max-body-size"
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                break
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(
                    f"request body is over the server's limit of {limit} bytes; send fewer "
                    "items per request or start the server with a larger --max-body-size"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        return body if encoding == "identity" else _decompress(body, encoding, limit)


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """A gzip/deflate body (tritonclient's request compression), capped at `limit` bytes."""
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise BadRequestError(
            f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or identity"
        )
    inflater = zlib.decompressobj(wbits)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise BadRequestError(f"the {encoding} request body is corrupt: {error}") from None
    if len(plain) > limit or inflater.unconsumed_tail:
        raise PayloadTooLargeError(
            f"the {encoding} request body inflates to over the server's limit of {limit} bytes"
        )
    return plain


@dataclass
class HttpResponse:
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    async def send(self, send: Send) -> None:
        headers = [
            (b"content-type", self.content_type.encode()),
            (b"content-length", str(len(self.body)).encode()),
        ]
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items())
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class StreamingResponse(HttpResponse):
    """A response sent as its chunks come (server-sent events); the body streams until the
    chunks end. A client that disconnects cancels the stream, which lets its producer stop."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        receive: Receive,
        content_type: str = "text/event-stream",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(b"", 200, content_type, {"cache-control": "no-cache", **(headers or {})})
        self.chunks = chunks
        self.receive = receive

    async def send(self, send: Send) -> None:
        headers = [(b"content-type", self.content_type.encode())]
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items())
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        sender = asyncio.current_task()
        assert sender is not None
        watcher = asyncio.get_running_loop().create_task(self._watch(sender))
        try:
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except asyncio.CancelledError:
            if not watcher.done():
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the client left: nothing more to send, nothing failed
        finally:
            watcher.cancel()
            closer = getattr(self.chunks, "aclose", None)
            if closer is not None:
                await closer()

    async def _watch(self, sender: asyncio.Task[Any]) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        sender.cancel("client disconnected")


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class Router:
    """Routes written like "/v2/models/{model}/infer"; a {name} matches one path segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], frozenset[str], Handler]] = []
        self._static: dict[str, tuple[frozenset[str], Handler]] = {}

    def add(self, pattern: str, handler: Handler, methods: tuple[str, ...] = ("GET",)) -> None:
        allowed = frozenset(methods)
        if "{" not in pattern:
            self._static[pattern] = (allowed, handler)
            return
        parts = re.split(r"\{(\w+)\}", pattern)  # literal, name, literal, name, ...
        regex = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/:]+)" for i, part in enumerate(parts)
        )
        self._routes.append((re.compile(f"^{regex}$"), allowed, handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and parameters for a request; 404 or 405 when there is none."""
        params: dict[str, str] = {}
        static = self._static.get(path)
        if static is not None:
            allowed, handler = static
        else:
            for regex, methods, route_handler in self._routes:
                matched = regex.match(path)
                if matched:
                    allowed, handler, params = methods, route_handler, matched.groupdict()
                    break
            else:
                raise NotFoundError(f"no route {path}; see the README for the API")
        if method not in allowed and not (method == "HEAD" and "GET" in allowed):
            names = sorted(allowed)
            raise MethodNotAllowedError(f"{path} takes {', '.join(names)}, not {method}", names)
        return handler, params


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
