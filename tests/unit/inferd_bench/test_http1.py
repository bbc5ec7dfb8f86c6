"""The light HTTP/1.1 client against a real loopback server (this folder's conftest.py)."""

from __future__ import annotations

import socket

import httptools
import pytest

from inferd_bench.http1 import (
    Channel,
    ConnectError,
    Connection,
    ConnectionClosed,
    ProtocolError,
    RequestTimeout,
    Target,
    encode_request,
)
from tests.unit.inferd_bench.conftest import OK_BODY, LocalServer


def get(target: Target, path: str) -> bytes:
    return encode_request(target, "GET", path)


def post(target: Target, path: str, body: bytes = b"{}") -> bytes:
    return encode_request(target, "POST", path, body, {"Content-Type": "application/json"})


async def test_keep_alive_reuses_one_connection(server: LocalServer) -> None:
    target = Target.parse(server.url)
    channel = Channel(target)
    for _ in range(5):
        assert await channel.send(post(target, "/ok"), 5.0) == 200
        assert channel.body == OK_BODY
    channel.close()
    assert server.stats.requests == 5
    assert server.stats.connections == 1
    assert channel.opened == 1


async def test_chunked_body_is_reassembled(server: LocalServer) -> None:
    target = Target.parse(server.url)
    channel = Channel(target)
    assert await channel.send(get(target, "/chunked"), 5.0) == 200
    assert channel.body == b'{"a":1}'
    assert await channel.send(get(target, "/ok"), 5.0) == 200  # still usable after chunks
    channel.close()
    assert server.stats.connections == 1


async def test_connection_close_makes_the_channel_reconnect(server: LocalServer) -> None:
    target = Target.parse(server.url)
    channel = Channel(target)
    assert await channel.send(get(target, "/close"), 5.0) == 200
    assert channel.connection is not None and channel.connection.closed
    assert await channel.send(get(target, "/ok"), 5.0) == 200
    channel.close()
    assert channel.opened == 2
    assert server.stats.connections == 2


async def test_body_delimited_by_the_end_of_the_connection(server: LocalServer) -> None:
    target = Target.parse(server.url)
    channel = Channel(target)
    assert await channel.send(get(target, "/eof"), 5.0) == 200
    assert channel.body == b"until the end"
    channel.close()


async def test_error_statuses_come_back_with_their_body(server: LocalServer) -> None:
    target = Target.parse(server.url)
    channel = Channel(target)
    assert await channel.send(post(target, "/status/404"), 5.0) == 404
    assert b"no such model" in channel.body
    assert await channel.send(post(target, "/status/503"), 5.0) == 503
    assert await channel.send(post(target, "/ok"), 5.0) == 200  # keep-alive after errors
    channel.close()
    assert server.stats.connections == 1


async def test_a_request_without_an_answer_times_out(server: LocalServer) -> None:
    target = Target.parse(server.url)
    channel = Channel(target)
    with pytest.raises(RequestTimeout):
        await channel.send(get(target, "/hang"), 0.05)
    # the timed-out connection is dropped; the next request gets a fresh one
    assert await channel.send(get(target, "/ok"), 5.0) == 200
    channel.close()
    assert channel.opened == 2


async def test_a_keep_alive_connection_closed_by_the_server_is_retried_once(
    server: LocalServer,
) -> None:
    target = Target.parse(server.url)
    channel = Channel(target)
    assert await channel.send(get(target, "/once"), 5.0) == 200
    # The server drops the next request on that connection without a byte of answer: the
    # client sends it again on a new connection, where it is answered.
    assert await channel.send(get(target, "/once"), 5.0) == 200
    channel.close()
    assert channel.opened == 2
    assert server.stats.paths == ["/once", "/once", "/once"]


async def test_a_connection_dropped_on_its_first_request_is_not_retried(
    server: LocalServer,
) -> None:
    target = Target.parse(server.url)
    channel = Channel(target)
    with pytest.raises(ConnectionClosed):
        await channel.send(get(target, "/drop"), 5.0)
    channel.close()
    assert channel.opened == 1
    assert server.stats.paths == ["/drop"]


async def test_malformed_answer_is_a_protocol_error(server: LocalServer) -> None:
    target = Target.parse(server.url)
    channel = Channel(target)
    with pytest.raises(ProtocolError):
        await channel.send(get(target, "/garbage"), 5.0)
    channel.close()


async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(ConnectError, match="cannot connect"):
            await Connection.open(Target("127.0.0.1", port))


async def test_body_hook_sees_every_piece(server: LocalServer) -> None:
    target = Target.parse(server.url)
    channel = Channel(target)
    pieces: list[bytes] = []
    assert await channel.send(post(target, "/v1/completions"), 5.0, pieces.append) == 200
    assert b"".join(pieces).endswith(b"data: [DONE]\n\n")
    assert len(pieces) >= 2  # the events came 20 ms apart, not in one read
    assert channel.body == b""  # the hook took the body
    channel.close()


def test_target_parse() -> None:
    target = Target.parse("http://example.org:8080/prefix/")
    assert (target.host, target.port, target.prefix) == ("example.org", 8080, "/prefix")
    assert target.url == "http://example.org:8080/prefix"
    assert Target.parse("127.0.0.1:9000").port == 9000
    assert Target.parse("http://localhost").port == 80
    with pytest.raises(ValueError, match="only plain http"):
        Target.parse("https://example.org")
    with pytest.raises(ValueError, match="not a number"):
        Target.parse("http://host:port")


def test_encoded_request_parses_as_http() -> None:
    target = Target.parse("http://127.0.0.1:8000/api")
    data = encode_request(target, "POST", "/v2/models/m/infer", b'{"a": 1}', {"X-Key": "k"})

    class Seen:
        url = b""
        body = b""
        headers: dict[bytes, bytes] = {}  # noqa: RUF012 - one instance per test

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers[name.lower()] = value

        def on_body(self, body: bytes) -> None:
            self.body += body

    seen = Seen()
    parser = httptools.HttpRequestParser(seen)
    parser.feed_data(data)
    assert parser.get_method() == b"POST"
    assert seen.url == b"/api/v2/models/m/infer"
    assert seen.body == b'{"a": 1}'
    assert seen.headers[b"host"] == b"127.0.0.1:8000"
    assert seen.headers[b"content-length"] == b"8"
    assert seen.headers[b"x-key"] == b"k"
