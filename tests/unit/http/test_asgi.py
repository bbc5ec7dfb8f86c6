"""The ASGI side and the transport-neutral pieces: routing, body limits, responses, lifespan."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import pytest

from inferd.errors import (
    BadRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
)
from inferd.http.asgi import AsgiRequest, send_response, serve_lifespan
from inferd.http.messages import HttpRequest, HttpResponse
from inferd.http.routing import Router


async def _ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok")


async def _other(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"other")


def _router() -> Router:
    router = Router()
    router.add("/v2", _ok)
    router.add("/v2/models/{model}/infer", _other, ("POST",))
    router.add("/v1/models/{model}:predict", _ok, ("POST",))
    router.add("/v1/models/{model}/versions/{version}:predict", _other, ("POST",))
    return router


def test_static_and_parameter_routes() -> None:
    router = _router()
    assert router.match("GET", "/v2") == (_ok, {})
    assert router.match("POST", "/v2/models/digits/infer") == (_other, {"model": "digits"})
    assert router.match("POST", "/v1/models/digits:predict") == (_ok, {"model": "digits"})
    assert router.match("POST", "/v1/models/a-b.c/versions/2:predict") == (
        _other,
        {"model": "a-b.c", "version": "2"},
    )


def test_head_is_allowed_where_get_is() -> None:
    assert _router().match("HEAD", "/v2")[0] is _ok


def test_unknown_path_is_404_and_wrong_method_405() -> None:
    router = _router()
    with pytest.raises(NotFoundError, match="no route /v3"):
        router.match("GET", "/v3")
    with pytest.raises(NotFoundError):
        router.match("POST", "/v2/models/a/b/infer")  # a parameter is one segment
    with pytest.raises(MethodNotAllowedError, match="takes POST, not GET") as caught:
        router.match("GET", "/v2/models/digits/infer")
    assert caught.value.status_code == 405


def _receiver(messages: list[dict[str, Any]]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def _scope(headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/x", "headers": headers or []}


async def test_body_is_joined_from_chunks_and_headers_are_lowercase() -> None:
    receive = _receiver(
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"cd", "more_body": False},
        ]
    )
    request = AsgiRequest(_scope([(b"X-Thing", b"1")]), receive)
    assert await request.body(limit=10) == b"abcd"
    assert request.headers == {"x-thing": "1"}


async def test_body_over_limit_is_413_by_header_or_by_stream() -> None:
    declared = AsgiRequest(_scope([(b"content-length", b"100")]), _receiver([]))
    with pytest.raises(PayloadTooLargeError, match="100 bytes"):
        await declared.body(limit=10)
    streamed = AsgiRequest(
        _scope(),
        _receiver(
            [
                {"type": "http.request", "body": b"123456", "more_body": True},
                {"type": "http.request", "body": b"789012", "more_body": False},
            ]
        ),
    )
    with pytest.raises(PayloadTooLargeError, match="limit of 10"):
        await streamed.body(limit=10)


async def test_response_sends_status_headers_and_body() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    request = AsgiRequest(_scope(), _receiver([]))
    await send_response(HttpResponse(b"{}", 429, headers={"retry-after": "2"}), request, send)
    start, body = sent
    assert start["status"] == 429
    assert (b"retry-after", b"2") in start["headers"]
    assert (b"content-length", b"2") in start["headers"]
    assert body == {"type": "http.response.body", "body": b"{}"}


async def test_lifespan_runs_startup_and_shutdown() -> None:
    calls: list[str] = []
    sent: list[str] = []

    async def startup() -> None:
        calls.append("up")

    async def shutdown() -> None:
        calls.append("down")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    receive = _receiver([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    await serve_lifespan(receive, send, startup, shutdown)
    assert calls == ["up", "down"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_failed_startup_is_reported() -> None:
    sent: list[dict[str, Any]] = []

    async def startup() -> None:
        raise RuntimeError("repository missing")

    async def shutdown() -> None:
        raise AssertionError("never called")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await serve_lifespan(_receiver([{"type": "lifespan.startup"}]), send, startup, shutdown)
    assert sent == [{"type": "lifespan.startup.failed", "message": "repository missing"}]


def _encoded(encoding: str, body: bytes) -> HttpRequest:
    return AsgiRequest(
        _scope([(b"content-encoding", encoding.encode())]),
        _receiver([{"type": "http.request", "body": body, "more_body": False}]),
    )


async def test_gzip_and_deflate_bodies_are_inflated() -> None:
    assert await _encoded("gzip", gzip.compress(b"x" * 50)).body(limit=100) == b"x" * 50
    assert await _encoded("deflate", zlib.compress(b"y" * 50)).body(limit=100) == b"y" * 50


async def test_compressed_bombs_corrupt_bodies_and_unknown_encodings_are_refused() -> None:
    with pytest.raises(PayloadTooLargeError, match="inflates to over"):
        await _encoded("gzip", gzip.compress(b"\0" * 1_000_000)).body(limit=4000)
    with pytest.raises(BadRequestError, match="corrupt"):
        await _encoded("gzip", b"not gzip at all").body(limit=1000)
    with pytest.raises(BadRequestError, match="'br' is not supported"):
        await _encoded("br", b"...").body(limit=1000)
