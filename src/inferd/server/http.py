"""The HTTP transport: Open Inference Protocol V2 and KServe V1 routes over the DataPlane.

Each route converts its wire format (via `codecs`) and calls one DataPlane method; errors
become `{"error": "..."}` with the status their class carries. Request bodies are read with
a size cap, deadlines come from a `timeout_ms` parameter or the `Inferd-Timeout-Ms` header,
and a client that disconnects has its queued work cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inferd.codecs import (
    HEADER_CONTENT_LENGTH,
    decode_infer_request,
    encode_infer_response,
    json_dumps,
    json_loads,
)
from inferd.errors import (
    BadRequestError,
    InferdError,
    OverloadedError,
    PayloadTooLargeError,
    UnauthorizedError,
)
from inferd.repository import ModelRepository
from inferd.server.dataplane import DataPlane
from inferd.server.metrics import Metrics

logger = logging.getLogger("inferd.server")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
TIMEOUT_HEADER = "inferd-timeout-ms"
_JSON = "application/json"
T = TypeVar("T")
_request_ids = itertools.count(1)
_id_prefix = os.urandom(3).hex()


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_dumps(content), status_code=status, media_type=_JSON, headers=headers)


def _error_response(error: InferdError, request_id: str) -> Response:
    headers = {"x-request-id": request_id}
    if isinstance(error, OverloadedError):
        headers["retry-after"] = str(max(1, round(error.retry_after_s)))
    return _json({"error": error.message}, error.status_code, headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"request body is {int(declared)} bytes, over the server's limit of {limit}; "
            "send fewer items per request or start the server with a larger --max-body-size"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"request body is over the server's limit of {limit} bytes; send fewer items "
                "per request or start the server with a larger --max-body-size"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _deadline(request: Request, parameters: dict[str, Any] | None) -> float | None:
    raw: Any = (parameters or {}).get("timeout_ms", request.headers.get(TIMEOUT_HEADER))
    if raw is None:
        return None
    try:
        milliseconds = float(raw)
    except (TypeError, ValueError):
        raise BadRequestError(f"timeout_ms must be a number of milliseconds; got {raw!r}") from None
    if milliseconds <= 0:
        raise BadRequestError(f"timeout_ms must be positive; got {raw!r}")
    return time.monotonic() + milliseconds / 1000.0


_DISCONNECTED = "inferd.disconnected"
"""Scope key set when the client went away, so the cancellation it causes is told apart."""


async def _cancel_on_disconnect(request: Request, handler: asyncio.Task[Any]) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            request.scope[_DISCONNECTED] = True
            handler.cancel("client disconnected")
            return


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (and its queued items) if the client goes away first.

    One watcher task reads the connection; on a disconnect it cancels this handler's task,
    which cancels the batcher's future, which drops the queued item.
    """
    handler = asyncio.current_task()
    assert handler is not None
    watcher = asyncio.get_running_loop().create_task(
        _cancel_on_disconnect(request, handler)
    )
    try:
        return await work
    finally:
        watcher.cancel()


class HttpServer:
    """Builds the Starlette app for one repository."""

    def __init__(
        self,
        repository_path: Path,
        *,
        trust_code: bool = False,
        api_key: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.metrics = Metrics(
            queues=lambda: self.dataplane.queue_states(),
            known_models=lambda name: self.dataplane.known(name),
        )
        self.repository = ModelRepository(
            repository_path, trust_code=trust_code, on_batch=self.metrics.observe_batch
        )
        self.dataplane = DataPlane(self.repository, self.metrics)
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(self.repository.load)
        await self.repository.start()
        self.dataplane.started = True
        for entry in self.repository.entries():
            state = f"versions {sorted(entry.versions)}" if entry.versions else "NOT LOADED"
            logger.info("model %s: %s", entry.name, state)
        try:
            yield
        finally:
            self.dataplane.started = False
            await self.repository.stop()

    def app(self) -> Starlette:
        v2 = "/v2/models/{model}"
        v2v = "/v2/models/{model}/versions/{version}"
        routes = [
            Route("/v2/health/live", self._guard(self.live)),
            Route("/v2/health/ready", self._guard(self.ready)),
            Route("/v2", self._guard(self.server_metadata)),
            Route("/v2/repository/index", self._guard(self.index), methods=["GET", "POST"]),
            Route(v2, self._guard(self.model_metadata)),
            Route(v2v, self._guard(self.model_metadata)),
            Route(v2 + "/ready", self._guard(self.model_ready)),
            Route(v2v + "/ready", self._guard(self.model_ready)),
            Route(v2 + "/infer", self._guard(self.infer), methods=["POST"]),
            Route(v2v + "/infer", self._guard(self.infer), methods=["POST"]),
            Route("/v1/models/{model}", self._guard(self.v1_status)),
            Route("/v1/models/{model}/versions/{version}", self._guard(self.v1_status)),
            Route("/v1/models/{model}:predict", self._guard(self.predict), methods=["POST"]),
            Route(
                "/v1/models/{model}/versions/{version}:predict",
                self._guard(self.predict),
                methods=["POST"],
            ),
            Route("/metrics", self.prometheus),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan)

    # --- plumbing ---------------------------------------------------------------------------

    def _guard(
        self, handler: Callable[[Request, str], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Auth, request ids, error rendering and request counting around one route."""

        async def endpoint(request: Request) -> Response:
            request_id = request.headers.get("x-request-id") or (
                f"{_id_prefix}-{next(_request_ids)}"
            )
            model = request.path_params.get("model", "")
            try:
                self._authorize(request)
                response = await handler(request, request_id)
            except InferdError as error:
                response = _error_response(error, request_id)
            except asyncio.CancelledError:
                if not request.scope.get(_DISCONNECTED):
                    raise  # the server is shutting down
                # The client hung up: its work is dropped; nobody is left to answer.
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                response = _json({"error": "client disconnected"}, 499)
            except Exception:
                logger.exception("request %s crashed the handler", request_id)
                response = _json(
                    {"error": f"internal server error (request id {request_id}; see the log)"},
                    500,
                    {"x-request-id": request_id},
                )
            if model:
                self.metrics.count(model, _protocol(request), response.status_code)
            return response

        return endpoint

    def _authorize(self, request: Request) -> None:
        if self.api_key is None or request.scope["path"].startswith("/v2/health"):
            return
        given = request.headers.get("x-api-key") or ""
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = bearer[7:]
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise UnauthorizedError(
                "missing or wrong API key; send it as 'Authorization: Bearer <key>' "
                "or 'X-API-Key: <key>'"
            )

    # --- routes -----------------------------------------------------------------------------

    async def live(self, request: Request, request_id: str) -> Response:
        return _json({"live": self.dataplane.live()})

    async def ready(self, request: Request, request_id: str) -> Response:
        ready = self.dataplane.ready()
        return _json({"ready": ready}, 200 if ready else 503)

    async def server_metadata(self, request: Request, request_id: str) -> Response:
        return _json(self.dataplane.server_metadata())

    async def index(self, request: Request, request_id: str) -> Response:
        return _json(self.dataplane.model_index())

    async def model_metadata(self, request: Request, request_id: str) -> Response:
        params = request.path_params
        return _json(self.dataplane.model_metadata(params["model"], params.get("version")))

    async def model_ready(self, request: Request, request_id: str) -> Response:
        params = request.path_params
        ready = self.dataplane.model_ready(params["model"], params.get("version"))
        return _json({"name": params["model"], "ready": ready}, 200 if ready else 503)

    async def v1_status(self, request: Request, request_id: str) -> Response:
        params = request.path_params
        ready = self.dataplane.model_ready(params["model"], params.get("version"))
        return _json({"name": params["model"], "ready": ready}, 200 if ready else 503)

    async def infer(self, request: Request, request_id: str) -> Response:
        params = request.path_params
        self.dataplane.check_model(params["model"], params.get("version"))
        body = await _read_body(request, self.max_body_bytes)
        header = request.headers.get(HEADER_CONTENT_LENGTH)
        if header is not None and not header.isdigit():
            raise BadRequestError(f"{HEADER_CONTENT_LENGTH} must be a byte count; got {header!r}")
        infer_request = decode_infer_request(body, int(header) if header is not None else None)
        deadline = _deadline(request, infer_request.parameters)
        response = await _unless_disconnected(
            request,
            self.dataplane.infer(
                params["model"], params.get("version"), infer_request, request_id, deadline
            ),
        )
        payload, json_length = encode_infer_response(response, infer_request)
        headers = {"x-request-id": request_id}
        if json_length is None:
            return Response(payload, media_type=_JSON, headers=headers)
        headers[HEADER_CONTENT_LENGTH] = str(json_length)
        return Response(payload, media_type="application/octet-stream", headers=headers)

    async def predict(self, request: Request, request_id: str) -> Response:
        params = request.path_params
        self.dataplane.check_model(params["model"], params.get("version"))
        body = json_loads(await _read_body(request, self.max_body_bytes))
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
            raise BadRequestError('the body must be a JSON object {"instances": [...]}')
        instances = body["instances"]
        if not instances:
            raise BadRequestError('"instances" is empty; send at least one instance')
        parameters = body.get("parameters")
        deadline = _deadline(request, parameters if isinstance(parameters, dict) else None)
        predictions = await _unless_disconnected(
            request,
            self.dataplane.predict(
                params["model"], params.get("version"), instances, request_id, deadline
            ),
        )
        return _json({"predictions": predictions}, headers={"x-request-id": request_id})

    async def prometheus(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")


def _protocol(request: Request) -> str:
    path: str = request.scope["path"]
    return "v1" if path.startswith("/v1") else "v2"


def create_app(
    repository_path: Path,
    *,
    trust_code: bool = False,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """The ASGI app serving every model in `repository_path`."""
    server = HttpServer(
        repository_path, trust_code=trust_code, api_key=api_key, max_body_bytes=max_body_bytes
    )
    return server.app()
