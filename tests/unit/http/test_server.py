"""inferd's own HTTP/1.1 server (server.py, connection.py, writing.py), over real loopback
sockets with a handler that records what it was given: keep-alive, pipelining, limits,
streaming, disconnects, timeouts, stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from inferd.errors import ListenError, StartupError, UnauthorizedError
from inferd.http import server
from inferd.http.limits import HttpLimits
from inferd.http.messages import HttpRequest, HttpResponse, StreamingResponse
from inferd.http.server import (
    GC_THRESHOLDS,
    HttpService,
    bind,
    is_loopback,
    settle_garbage_collector,
)


@dataclass
class Recorder:
    """The handler: answers by path and keeps what it saw."""

    seen: list[tuple[str, str, bytes, dict[str, str]]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: list[str] = field(default_factory=list)
    stream_closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        body = await request.body(limit=1_000_000)
        self.seen.append((request.method, request.path, body, dict(request.headers)))
        if request.path == "/slow":
            request.cancel_on_disconnect(True)
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.append(request.path)
                raise
            finally:
                request.cancel_on_disconnect(False)
            return HttpResponse(b"slow done")
        if request.path == "/big":
            return HttpResponse(b"x" * 65536)
        if request.path == "/stream":
            return StreamingResponse(self._events(), headers={"x-kind": "sse"})
        reply = {"path": request.path, "size": len(body)}
        return HttpResponse(json.dumps(reply).encode(), headers={"x-request-id": "r1"})

    async def _events(self) -> AsyncIterator[bytes]:
        try:
            for i in range(3):
                yield f"data: {i}\n\n".encode()
            if self.release.is_set():
                return
            await asyncio.sleep(30)  # held open until the client leaves
        finally:
            self.stream_closed.set()


@asynccontextmanager
async def serving(
    handler: Recorder, max_body_bytes: int = 1000, **limits: float
) -> AsyncIterator[tuple[HttpService, int]]:
    events: list[str] = []

    async def startup() -> None:
        events.append("up")

    async def shutdown(within_s: float | None) -> None:
        events.append("down")

    def admit(method: str, path: str, headers: Mapping[str, str]) -> None:
        if path.startswith("/private") and headers.get("x-api-key") != "k":
            raise UnauthorizedError("missing or wrong API key")

    service = HttpService(
        handler,
        startup=startup,
        shutdown=shutdown,
        limits=HttpLimits(max_body_bytes=max_body_bytes, **limits),  # type: ignore[arg-type]
        admit=admit,
    )
    sock = bind("127.0.0.1", 0)
    task = asyncio.create_task(service.serve(sock))
    await asyncio.wait_for(service.serving.wait(), 5)
    try:
        yield service, sock.getsockname()[1]
    finally:
        service.stop()
        await asyncio.wait_for(task, 15)
        sock.close()
        assert events == ["up", "down"]


async def exchange(port: int, raw: bytes, *, read_until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    try:
        if read_until_close:
            return await asyncio.wait_for(reader.read(), 5)
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


async def until(condition: Callable[[], object]) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in 3 s")


async def start_slow_request(
    port: int, recorder: Recorder
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose GET /slow the handler is now holding (until `release`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await until(lambda: recorder.seen)
    return reader, writer


def split_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Parse back-to-back Content-Length responses."""
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        answers.append((status, headers, rest[:length]))
        data = rest[length:]
    return answers


async def test_keep_alive_requests_with_httpx_and_headers_it_sends() -> None:
    recorder = Recorder()
    async with (
        serving(recorder) as (_, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        first = await client.post("/v2/models/a/infer", content=b"abc")
        second = await client.post("/v2/models%20b/infer?x=1", content=b"defg")
    assert first.json() == {"path": "/v2/models/a/infer", "size": 3}
    assert second.json() == {"path": "/v2/models b/infer", "size": 4}  # decoded, no query
    assert first.headers["x-request-id"] == "r1"
    assert first.headers["content-type"] == "application/json"
    assert "date" in first.headers
    assert recorder.seen[0][3]["content-length"] == "3"


async def test_pipelined_requests_are_answered_in_order() -> None:
    recorder = Recorder()
    raw = b"".join(
        f"POST /{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {i}\r\n\r\n".encode() + b"x" * i
        for i in range(1, 6)
    )
    async with serving(recorder) as (_, port):
        data = await exchange(port, raw + b"GET /last HTTP/1.1\r\nConnection: close\r\n\r\n")
    answers = split_responses(data)
    assert [json.loads(body)["path"] for _, _, body in answers] == [
        "/1",
        "/2",
        "/3",
        "/4",
        "/5",
        "/last",
    ]
    assert answers[-1][1]["connection"] == "close"


async def test_chunked_and_gzip_request_bodies() -> None:
    recorder = Recorder()
    packed = gzip.compress(b"hello world")
    raw = (
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Encoding: gzip\r\nConnection: close\r\n\r\n"
        + f"{len(packed[:5]):x}\r\n".encode()
        + packed[:5]
        + b"\r\n"
        + f"{len(packed[5:]):x}\r\n".encode()
        + packed[5:]
        + b"\r\n0\r\n\r\n"
    )
    async with serving(recorder) as (_, port):
        await exchange(port, raw)
    assert recorder.seen[0][2] == b"hello world"


async def test_100_continue_waits_for_the_answers_pipelined_before_it() -> None:
    recorder = Recorder()
    async with serving(recorder) as (_, port):
        reader, writer = await start_slow_request(port, recorder)
        writer.write(
            b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        await asyncio.sleep(0.1)
        recorder.release.set()
        first = await asyncio.wait_for(reader.readuntil(b"slow done"), 5)
        assert first.startswith(b"HTTP/1.1 200 OK")  # not the 100, ahead of the answer
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 OK")
        writer.close()


async def test_expect_100_continue_is_answered_before_the_body() -> None:
    recorder = Recorder()
    async with serving(recorder) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(b"ok")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 OK")
        writer.close()


async def test_declared_body_over_the_limit_is_413_and_the_connection_closes() -> None:
    recorder = Recorder()
    async with serving(recorder, max_body_bytes=10) as (_, port):
        data = await exchange(
            port, b"POST /big HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100
        )
        [(status, headers, body)] = split_responses(data)
        assert status == 413
        assert "5000 bytes" in json.loads(body)["error"]
        assert headers["connection"] == "close"
        chunked = (
            b"POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
        )
        [(status, _, body)] = split_responses(await exchange(port, chunked))
        assert status == 413
        assert "limit of 10 bytes" in json.loads(body)["error"]
    assert recorder.seen == []  # the handler never saw them


async def test_malformed_requests_and_huge_headers_are_refused() -> None:
    recorder = Recorder()
    async with serving(recorder) as (_, port):
        [(status, _, body)] = split_responses(await exchange(port, b"NOT HTTP AT ALL\r\n\r\n"))
        assert status == 400
        assert "malformed HTTP request" in json.loads(body)["error"]
        big = b"a" * (HttpLimits.max_header_bytes + 10)
        huge = b"GET / HTTP/1.1\r\nX-Big: " + big + b"\r\n\r\n"
        [(status, _, _)] = split_responses(await exchange(port, huge))
        assert status == 431
        # the server still serves
        data = await exchange(port, b"GET /fine HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert split_responses(data)[0][0] == 200


async def test_head_sends_headers_only_and_http10_closes() -> None:
    recorder = Recorder()
    async with serving(recorder) as (_, port):
        data = await exchange(port, b"HEAD /h HTTP/1.1\r\nConnection: close\r\n\r\n")
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"content-length: " in head and rest == b""
        data = await exchange(port, b"GET /old HTTP/1.0\r\n\r\n")  # closed by the server
        assert split_responses(data)[0][0] == 200


async def test_an_upgrade_request_is_answered_in_http11_and_nothing_after_it_is_parsed() -> None:
    recorder = Recorder()
    raw = (
        b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        b"GET /after HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    async with serving(recorder) as (_, port):
        answers = split_responses(await exchange(port, raw))
    assert [json.loads(b)["path"] for _, _, b in answers] == ["/u"]
    assert answers[0][1]["connection"] == "close"
    assert [path for _, path, _, _ in recorder.seen] == ["/u"]


async def test_an_upgrade_request_with_a_body_cannot_smuggle_a_request_in_it() -> None:
    recorder = Recorder()
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = (
        b"POST /u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        + f"Content-Length: {len(smuggled)}\r\n\r\n".encode()
        + smuggled
    )
    async with serving(recorder) as (_, port):
        [(status, headers, body)] = split_responses(await exchange(port, raw))
        assert status == 400
        assert "Upgrade" in json.loads(body)["error"]
        assert headers["connection"] == "close"
        many = b"GET /u HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n" * 2000
        answers = split_responses(await exchange(port, many))
        assert [status for status, _, _ in answers] == [200]  # not a RecursionError
    assert [path for _, path, _, _ in recorder.seen] == ["/u"]


async def test_streamed_response_is_chunked_and_ends() -> None:
    recorder = Recorder()
    recorder.release.set()  # the stream ends by itself after three events
    async with (
        serving(recorder) as (_, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        client.stream("GET", "/stream") as response,
    ):
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["x-kind"] == "sse"
        text = "".join([part async for part in response.aiter_text()])
    assert text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"


async def test_a_client_that_leaves_a_stream_closes_its_producer() -> None:
    recorder = Recorder()
    async with serving(recorder) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"data: 2\n\n\r\n"), 5)
        writer.close()
        await asyncio.wait_for(recorder.stream_closed.wait(), 5)


async def test_a_client_that_disconnects_cancels_its_watched_work() -> None:
    recorder = Recorder()
    async with serving(recorder) as (_, port):
        _, writer = await start_slow_request(port, recorder)
        writer.close()
        await until(lambda: recorder.cancelled)
        assert recorder.cancelled == ["/slow"]
        # still serving
        data = await exchange(port, b"GET /next HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert split_responses(data)[0][0] == 200


async def test_idle_connections_close_and_stalled_requests_get_408(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "TICK_S", 0.05)
    recorder = Recorder()
    async with serving(recorder, keep_alive_s=0.2, body_timeout_s=0.3) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)  # answered, then closed when idle
        assert split_responses(data)[0][0] == 200
        writer.close()
        stalled = await exchange(port, b"POST /s HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        [(status, _, body)] = split_responses(stalled)
        assert status == 408
        assert json.loads(body)["error"] == "the request's body did not arrive within 0.3 s"


async def trickle(writer: asyncio.StreamWriter, data: bytes, every_s: float) -> None:
    """Send `data` a byte at a time (a slowloris client), until the server closes."""
    for byte in data:
        writer.write(bytes([byte]))
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(every_s)


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b"GET /slow-headers HTTP/1.1\r\nX-Pad: " + b"a" * 200, "headers"),
        (b"b" * 100, "body"),  # after headers sent at once
    ],
)
async def test_a_trickle_of_bytes_does_not_extend_the_deadlines(
    monkeypatch: pytest.MonkeyPatch, raw: bytes, what: str
) -> None:
    monkeypatch.setattr(server, "TICK_S", 0.05)
    recorder = Recorder()
    async with serving(recorder, header_timeout_s=0.4, body_timeout_s=0.4, keep_alive_s=0.3) as (
        _,
        port,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if what == "body":
            writer.write(b"POST /slow-body HTTP/1.1\r\nContent-Length: 100\r\n\r\n")
        sender = asyncio.create_task(trickle(writer, raw, 0.01))  # a byte every 10 ms
        data = await asyncio.wait_for(reader.read(), 5)
        sender.cancel()
        writer.close()
    [(status, _, body)] = split_responses(data)
    assert status == 408
    assert json.loads(body)["error"] == f"the request's {what} did not arrive within 0.4 s"
    assert recorder.seen == []


async def test_a_connection_that_sends_only_blank_lines_is_closed_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "TICK_S", 0.05)
    async with serving(Recorder(), keep_alive_s=0.3) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sender = asyncio.create_task(trickle(writer, b"\r\n" * 500, 0.01))
        with contextlib.suppress(ConnectionResetError):  # closed with bytes unread
            assert await asyncio.wait_for(reader.read(), 5) == b""
        assert not sender.done()  # still sending when the server closed
        sender.cancel()
        writer.close()


async def test_connections_over_the_limit_are_answered_429_and_closed() -> None:
    async with serving(Recorder(), max_connections=2) as (service, port):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await until(lambda: len(service.connections) == 2)
        data = await exchange(port, b"GET /x HTTP/1.1\r\n\r\n")
        [(status, headers, body)] = split_responses(data)
        assert status == 429
        assert headers["retry-after"] == "1"
        assert "limit of 2 connections" in json.loads(body)["error"]
        for _, writer in held:
            writer.close()
        await until(lambda: not service.connections)
        data = await exchange(port, b"GET /fine HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert split_responses(data)[0][0] == 200


async def flood(port: int, head: bytes, piece: bytes, times: int) -> bytes:
    """Send `head`, then `piece` over and over until the server stops reading; its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    for _ in range(times):
        writer.write(piece)
        try:
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(0)
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_a_header_line_that_never_ends_is_refused_before_it_is_buffered() -> None:
    async with serving(Recorder()) as (_, port):
        # 40 x 4 KiB, never ending the line
        data = await flood(port, b"GET / HTTP/1.1\r\nX-Endless: ", b"a" * 4096, 40)
    [(status, _, body)] = split_responses(data)
    assert status == 431
    assert f"over {HttpLimits.max_header_bytes} bytes" in json.loads(body)["error"]


async def test_endless_chunk_extensions_are_refused() -> None:
    recorder = Recorder()
    async with serving(recorder) as (_, port):
        head = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        # 1-byte chunks, each with a 4 KiB extension
        data = await flood(port, head, b"1;e=" + b"x" * 4096 + b"\r\nz\r\n", 200)
    [(status, _, body)] = split_responses(data)
    assert status == 400
    assert "framing" in json.loads(body)["error"]
    assert recorder.seen == []


async def test_an_unauthenticated_body_is_refused_on_its_headers_and_never_read() -> None:
    recorder = Recorder()
    async with serving(recorder) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /private HTTP/1.1\r\nContent-Length: 900\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)  # answered before the body is sent
        writer.close()
        [(status, headers, body)] = split_responses(data)
        assert (status, headers["connection"]) == (401, "close")
        assert "API key" in json.loads(body)["error"]
        # with the key, or without a body, the handler answers (and checks for itself)
        ok = await exchange(
            port,
            b"POST /private HTTP/1.1\r\nX-Api-Key: k\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\nhi",
        )
        assert split_responses(ok)[0][0] == 200
    assert [path for _, path, _, _ in recorder.seen] == ["/private"]


async def test_pipelined_answers_wait_for_a_client_that_does_not_read() -> None:
    recorder = Recorder()
    async with serving(recorder) as (_, port):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
        sent = 0
        for _ in range(100):  # 1,000 requests for 64 MiB of answers, never reading one
            writer.write(request * 10)
            sent += 10
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                break  # the server stopped reading: back-pressure reached the client
        answered = len(recorder.seen)
        assert answered < sent  # it stopped answering a client that does not read
        await asyncio.sleep(0.3)
        assert len(recorder.seen) == answered  # and stays stopped
        writer.close()


async def test_stop_finishes_requests_in_flight_and_refuses_new_connections() -> None:
    recorder = Recorder()
    async with serving(recorder) as (service, port):
        reader, writer = await start_slow_request(port, recorder)
        service.stop()
        await asyncio.sleep(0.1)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        recorder.release.set()
        data = await asyncio.wait_for(reader.read(), 5)
        [(status, headers, body)] = split_responses(data)
        assert (status, body) == (200, b"slow done")
        assert headers["connection"] == "close"
        writer.close()


def test_a_taken_port_is_a_clear_error() -> None:
    first = bind("127.0.0.1", 0)
    first.listen()
    port = first.getsockname()[1]
    try:
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind("127.0.0.1", port)
    finally:
        first.close()


async def test_a_failed_start_up_is_a_startup_error_and_nothing_listens() -> None:
    async def startup() -> None:
        raise RuntimeError("the store is unreachable")

    async def shutdown(within_s: float | None) -> None:
        raise AssertionError("never started, so never shut down")

    service = HttpService(Recorder(), startup=startup, shutdown=shutdown, limits=HttpLimits())
    sock = bind("127.0.0.1", 0)
    try:
        with pytest.raises(StartupError, match="start-up failed: the store is unreachable"):
            await service.serve(sock)
        assert not service.serving.is_set()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()


def test_settling_the_collector_freezes_the_start_up_heap() -> None:
    before = gc.get_threshold()
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_loopback_addresses_are_told_from_the_rest() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("no-such-host.invalid")


def test_workers_bind_one_port_with_reuse_port_and_others_are_kept_out() -> None:
    first = bind("127.0.0.1", 0, reuse_port=True)
    first.listen()
    port = first.getsockname()[1]
    second = bind("127.0.0.1", port, reuse_port=True)
    second.listen()
    try:
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind("127.0.0.1", port)  # a process that did not ask to share the port
    finally:
        first.close()
        second.close()
