"""What every HTTP transport hands the routes, and what the routes hand back.

inferd has two ways in over HTTP: its own HTTP/1.1 server (`server.py`, what `inferd serve`
runs) and the ASGI interface (`asgi.py`, for any ASGI server and for in-process tests). Both
turn a request into an `HttpRequest`, call the same routes, and write the `HttpResponse` they
get back in their own way. Nothing here knows about models or about a particular transport.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from inferd.errors import BadRequestError, PayloadTooLargeError


class HttpRequest(ABC):
    """One request: method, path, route parameters, headers (lower-case names) and the body."""

    __slots__ = ("arrived", "disconnected", "id", "method", "params", "path", "query")

    def __init__(
        self, method: str, path: str, query: str = "", arrived: float | None = None
    ) -> None:
        self.arrived = time.monotonic() if arrived is None else arrived
        """time.monotonic() when its first byte arrived: a deadline counts from here."""
        self.method = method
        self.path = path
        self.query = query
        """The URL's query string, undecoded (what follows '?')."""
        self.params: dict[str, str] = {}
        self.id = ""
        """The request id: the client's X-Request-Id, or one the server makes."""
        self.disconnected = False
        """Set when the client went away, so the cancellation that follows is told apart."""

    @property
    @abstractmethod
    def headers(self) -> dict[str, str]: ...

    @abstractmethod
    async def body(self, limit: int) -> bytes:
        """The whole body, decompressed; 413 when it is (or inflates to) over `limit` bytes."""

    @abstractmethod
    def cancel_on_disconnect(self, on: bool) -> None:
        """From now on (until called with False), a client that disconnects cancels the
        task answering this request."""


def too_large(size: int | None, limit: int) -> PayloadTooLargeError:
    """The 413 for a body over `limit`; `size` when the client declared it."""
    what = f"is {size} bytes, over" if size is not None else "is over"
    return PayloadTooLargeError(
        f"request body {what} the server's limit of {limit} bytes; send fewer items per "
        "request or start the server with a larger --max-body-size"
    )


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decode_content(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before its Content-Encoding (tritonclient compresses requests with
    gzip or deflate), capped at `limit` bytes so a small bomb cannot inflate without end."""
    if encoding is None:
        return body
    encoding = encoding.strip().lower()
    if encoding == "identity":
        return body
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


class StreamingResponse(HttpResponse):
    """A response sent as its chunks come (server-sent events). A client that disconnects
    cancels the sending, and the transport then closes `chunks`, which stops its producer."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        content_type: str = "text/event-stream",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(b"", 200, content_type, {"cache-control": "no-cache", **(headers or {})})
        self.chunks = chunks

    async def close(self) -> None:
        closer = getattr(self.chunks, "aclose", None)
        if closer is not None:
            await closer()


async def send_chunks(
    request: HttpRequest, response: StreamingResponse, write: Callable[[bytes], Awaitable[None]]
) -> bool:
    """Write a streaming response's chunks as they come: True when they ended, False when the
    client disconnected (which cancels the sending; then nothing failed and nothing is left
    to send). Either way the chunks are closed, which stops their producer."""
    sender = asyncio.current_task()
    assert sender is not None
    request.cancel_on_disconnect(True)
    try:
        async for chunk in response.chunks:
            await write(chunk)
        return True
    except asyncio.CancelledError:
        if not request.disconnected:
            raise
        sender.uncancel()
        return False
    finally:
        request.cancel_on_disconnect(False)
        await response.close()


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
"""What a transport calls for each request: the routes' entry point."""
