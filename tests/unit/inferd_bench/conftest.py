"""A real HTTP/1.1 server on loopback, in a background thread, whose answers the path chooses.

/ok, */infer   200, a small JSON body, keep-alive
/chunked       200, the body in three chunks (Transfer-Encoding: chunked)
/close         200 with Connection: close, then the server hangs up
/eof           200 with neither Content-Length nor chunking: the body ends at the hang-up
/status/N      status N with a JSON error body
/sleep/MS      200 after MS milliseconds
/hang          never answers
/drop          hangs up without answering
/garbage       bytes that are not HTTP
/once          answered once per connection; a second request on it is dropped unanswered
               (what a server that times out an idle keep-alive connection does)
/v1/completions  an OpenAI-style stream: three text events 20 ms apart, usage, [DONE]
GET /v2/models/M  V2 metadata: x FP32[-1, 4]
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import httptools
import pytest

OK_BODY = b'{"outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":[1.0]}]}'
METADATA = b'{"name":"m","inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}],"outputs":[]}'
SSE_EVENTS = [
    b'data: {"choices":[{"index":0,"text":"Hello","finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"text":" wor","finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"text":"ld","finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"text":"","finish_reason":"length"}]}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3}}\n\n'
    b"data: [DONE]\n\n",
]


def response(status: int, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(*parts: bytes) -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


@dataclass
class Stats:
    connections: int = 0
    requests: int = 0
    paths: list[str] = field(default_factory=list)


class _Handler(asyncio.Protocol):
    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.answered = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.stats.connections += 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        self.stats.requests += 1
        path = self.url.decode()
        self.stats.paths.append(path)
        asyncio.get_running_loop().create_task(self.answer(path))

    async def answer(self, path: str) -> None:
        transport = self.transport
        assert transport is not None
        if self.parser.get_method() == b"GET" and path.startswith("/v2/models/"):
            transport.write(response(200, METADATA))
        elif path == "/ok" or path.endswith("/infer"):
            transport.write(response(200, OK_BODY))
        elif path == "/chunked":
            transport.write(
                response(200, chunked(b'{"a":', b"1", b"}"), "Transfer-Encoding: chunked")
            )
        elif path == "/close":
            transport.write(response(200, OK_BODY, "Connection: close"))
            transport.close()
        elif path == "/eof":
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
            transport.close()
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            transport.write(response(status, b'{"error": "no such model"}'))
        elif path.startswith("/sleep/"):
            await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000)
            transport.write(response(200, OK_BODY))
        elif path == "/hang":
            return
        elif path == "/drop":
            transport.close()
            return
        elif path == "/garbage":
            transport.write(b"this is not HTTP at all\r\n\r\n")
        elif path == "/once":
            if self.answered:
                transport.close()
                return
            transport.write(response(200, OK_BODY))
        elif path == "/v1/completions":
            transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for event in SSE_EVENTS:
                await asyncio.sleep(0.02)
                transport.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            transport.write(b"0\r\n\r\n")
        else:
            transport.write(response(404, b"unknown test path"))
        self.answered += 1


class LocalServer:
    """The server above on its own event loop thread, so sync and async tests share it."""

    def __init__(self) -> None:
        self.stats = Stats()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            self.loop.create_server(lambda: _Handler(self.stats), "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> Stats:
        self.stats.connections = self.stats.requests = 0
        self.stats.paths.clear()
        return self.stats

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalServer]:
    server = LocalServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(local_server: LocalServer) -> LocalServer:
    local_server.reset()
    return local_server
