"""The HTTP transport: Open Inference Protocol V2 and KServe V1 routes over the DataPlane.

Each route converts its wire format (via `codecs`) and calls one DataPlane method; errors
become `{"error": "..."}` with the status their class carries. Request bodies are read with
a size cap, deadlines come from a `timeout_ms` parameter or the `Inferd-Timeout-Ms` header,
and a client that disconnects has its queued work cancelled.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

from inferd.actions.outbox import Outbox
from inferd.api import openai, v2_generate
from inferd.codecs import (
    HEADER_CONTENT_LENGTH,
    decode_infer_request,
    encode_infer_response,
    json_dumps,
    json_loads,
)
from inferd.dataplane import DataPlane
from inferd.errors import (
    BadRequestError,
    InferdError,
    MethodNotAllowedError,
    OverloadedError,
    UnauthorizedError,
)
from inferd.generate.request import Delta
from inferd.http.asgi import AsgiRequest, Receive, Scope, Send, send_response, serve_lifespan
from inferd.http.messages import HttpRequest, HttpResponse, StreamingResponse
from inferd.http.routing import Router
from inferd.monitor.feedback import parse_feedback
from inferd.monitor.metrics import Metrics
from inferd.monitor.recording import Recorder
from inferd.repository import ModelRepository
from inferd.spec import GenerationSpec

logger = logging.getLogger("inferd.server")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
TIMEOUT_HEADER = "inferd-timeout-ms"
T = TypeVar("T")
_request_ids = itertools.count(1)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")


def _client_request_id(request: HttpRequest) -> str | None:
    """The client's own X-Request-Id, when it sent a usable one (it names the prediction in
    the log, the actions' idempotency keys and feedback)."""
    given = request.headers.get("x-request-id")
    if given is None:
        return None
    if not _REQUEST_ID.match(given):
        raise BadRequestError(
            "X-Request-Id must be 1-128 characters of letters, digits and ._:/+=@-"
        )
    return given


_id_prefix = os.urandom(6).hex()
"""Per process, so generated request ids stay unique across restarts (the store keeps them)."""


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(json_dumps(content), status, headers=headers or {})


def _error_response(error: InferdError, request_id: str) -> HttpResponse:
    headers = {"x-request-id": request_id} if request_id else {}
    if isinstance(error, OverloadedError):
        headers["retry-after"] = str(max(1, round(error.retry_after_s)))
    if isinstance(error, MethodNotAllowedError):
        headers["allow"] = ", ".join(error.allowed)
    return _json({"error": error.message}, error.status_code, headers)


async def _collect(deltas: AsyncIterator[Delta]) -> tuple[str, Delta]:
    """A generation's whole text and its closing Delta (usage, finish reason)."""
    parts = []
    last = Delta("", [])
    async for delta in deltas:
        parts.append(delta.text)
        last = delta
    return "".join(parts), last


def _deadline(request: HttpRequest, parameters: dict[str, Any] | None) -> float | None:
    raw: Any = (parameters or {}).get("timeout_ms", request.headers.get(TIMEOUT_HEADER))
    if raw is None:
        return None
    try:
        milliseconds = float(raw)
    except (TypeError, ValueError):
        raise BadRequestError(f"timeout_ms must be a number of milliseconds; got {raw!r}") from None
    if not math.isfinite(milliseconds) or milliseconds <= 0:
        raise BadRequestError(f"timeout_ms must be positive; got {raw!r}")
    return time.monotonic() + milliseconds / 1000.0


async def _unless_disconnected(request: HttpRequest, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (and its queued items) if the client goes away first:
    the transport cancels this handler's task, which cancels the batcher's future, which
    drops the queued item."""
    request.cancel_on_disconnect(True)
    try:
        return await work
    finally:
        request.cancel_on_disconnect(False)


class HttpServer:
    """inferd's HTTP routes over one repository: an ASGI app, and the handler the HTTP
    server calls."""

    def __init__(
        self,
        repository_path: Path,
        *,
        trust_code: bool = False,
        api_key: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        store_url: str | None = None,
        retention_days: float = 30.0,
    ) -> None:
        self.outbox: Outbox | None = None
        self.metrics = Metrics(
            queues=lambda: self.dataplane.queue_states(),
            known_models=lambda name: self.dataplane.known(name),
            engines=lambda: self.dataplane.engine_states(),
            actions=self._outbox_counts if store_url else None,
        )
        if store_url:
            self.outbox = Outbox(
                store_url,
                trust_code=trust_code,
                retention_days=retention_days,
                on_outcome=self.metrics.action_outcome,
            )
        self.repository = ModelRepository(
            repository_path, trust_code=trust_code, on_batch=self.metrics.observe_batch
        )
        self.dataplane = DataPlane(
            self.repository,
            self.metrics,
            store=self.outbox.store if self.outbox else None,
            recorder=Recorder(self.outbox.writer) if self.outbox else None,
        )
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

        self.router = self._routes()

    def _outbox_counts(self) -> dict[tuple[str, str], int]:
        assert self.outbox is not None
        return self.outbox.store.action_counts()

    async def startup(self) -> None:
        if self.outbox is not None:
            await self.outbox.start()  # first: actions left by a previous run go out now
        await asyncio.to_thread(self.repository.load)
        await self.repository.start()
        for model in self.dataplane.generation_models():
            assert model.engine is not None
            model.engine.observer = self.metrics.generation_observer(model.name)
        self.dataplane.started = True
        for entry in self.repository.entries():
            state = f"versions {sorted(entry.versions)}" if entry.versions else "NOT LOADED"
            logger.info("model %s: %s", entry.name, state)

    async def shutdown(self) -> None:
        self.dataplane.started = False
        await self.repository.stop()
        if self.outbox is not None:
            await self.outbox.stop()

    def _routes(self) -> Router:
        router = Router()
        post = ("POST",)
        for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
            router.add(prefix, self.model_metadata)
            router.add(prefix + "/ready", self.model_ready)
            router.add(prefix + "/infer", self.infer, post)
        router.add("/v2/models/{model}/generate", self.generate, post)
        router.add("/v2/models/{model}/generate_stream", self.generate_stream, post)
        for prefix in ("/v1/models/{model}", "/v1/models/{model}/versions/{version}"):
            router.add(prefix, self.model_ready)
            router.add(prefix + ":predict", self.predict, post)
        router.add("/v1/feedback", self.feedback, post)
        router.add("/v1/models", self.openai_models)
        router.add("/v1/completions", self.completions, post)
        router.add("/v1/chat/completions", self.chat_completions, post)
        router.add("/v2/health/live", self.live)
        router.add("/v2/health/ready", self.ready)
        router.add("/v2", self.server_metadata)
        router.add("/v2/repository/index", self.index, ("GET", "POST"))
        router.add("/metrics", self.prometheus)
        return router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] == "http":
            request = AsgiRequest(scope, receive)
            response = await self.handle(request)
            if not request.disconnected:
                await send_response(response, request, send)
        elif scope["type"] == "lifespan":
            await serve_lifespan(receive, send, self.startup, self.shutdown)

    # --- plumbing ---------------------------------------------------------------------------

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Route one request: auth, request id, error rendering and request counting."""
        model = ""
        request_id = ""
        try:
            handler, params = self.router.match(request.method, request.path)
            request.params = params
            request_id = f"{_id_prefix}-{next(_request_ids)}"
            request_id = request.id = _client_request_id(request) or request_id
            model = params.get("model", "")
            self._authorize(request)
            response = await handler(request)
        except InferdError as error:
            response = _error_response(error, request_id)
        except asyncio.CancelledError:
            if not request.disconnected:
                raise  # the server is shutting down
            # The client hung up: its work is dropped and nobody is left to answer.
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
            protocol = "v1" if request.path.startswith("/v1") else "v2"
            self.metrics.count(model, protocol, response.status)
        if request_id:
            response.headers.setdefault("x-request-id", request_id)
        return response

    def _authorize(self, request: HttpRequest) -> None:
        if self.api_key is None or request.path.startswith("/v2/health"):
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

    async def live(self, request: HttpRequest) -> HttpResponse:
        return _json({"live": self.dataplane.live()})

    async def ready(self, request: HttpRequest) -> HttpResponse:
        ready = self.dataplane.ready()
        return _json({"ready": ready}, 200 if ready else 503)

    async def server_metadata(self, request: HttpRequest) -> HttpResponse:
        return _json(self.dataplane.server_metadata())

    async def index(self, request: HttpRequest) -> HttpResponse:
        return _json(self.dataplane.model_index())

    async def model_metadata(self, request: HttpRequest) -> HttpResponse:
        params = request.params
        return _json(self.dataplane.model_metadata(params["model"], params.get("version")))

    async def model_ready(self, request: HttpRequest) -> HttpResponse:
        params = request.params
        ready = self.dataplane.model_ready(params["model"], params.get("version"))
        return _json({"name": params["model"], "ready": ready}, 200 if ready else 503)

    async def infer(self, request: HttpRequest) -> HttpResponse:
        params = request.params
        self.dataplane.check_model(params["model"], params.get("version"))
        body = await request.body(self.max_body_bytes)
        header = request.headers.get(HEADER_CONTENT_LENGTH)
        if header is not None and not header.isdigit():
            raise BadRequestError(f"{HEADER_CONTENT_LENGTH} must be a byte count; got {header!r}")
        infer_request = decode_infer_request(body, int(header) if header is not None else None)
        deadline = _deadline(request, infer_request.parameters)
        response = await _unless_disconnected(
            request,
            self.dataplane.infer(
                params["model"], params.get("version"), infer_request, request.id, deadline
            ),
        )
        payload, json_length = encode_infer_response(response, infer_request)
        headers = {"x-request-id": request.id}
        if json_length is None:
            return HttpResponse(payload, headers=headers)
        headers[HEADER_CONTENT_LENGTH] = str(json_length)
        return HttpResponse(payload, content_type="application/octet-stream", headers=headers)

    async def predict(self, request: HttpRequest) -> HttpResponse:
        params = request.params
        self.dataplane.check_model(params["model"], params.get("version"))
        body = json_loads(await request.body(self.max_body_bytes))
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
            raise BadRequestError('the body must be a JSON object {"instances": [...]}')
        instances = body["instances"]
        if not instances:
            raise BadRequestError('"instances" is empty; send at least one instance')
        parameters = body.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise BadRequestError('"parameters" must be a JSON object of named values')
        deadline = _deadline(request, parameters)
        predictions = await _unless_disconnected(
            request,
            self.dataplane.predict(
                params["model"], params.get("version"), instances, request.id, deadline, parameters
            ),
        )
        return _json({"predictions": predictions}, headers={"x-request-id": request.id})

    async def feedback(self, request: HttpRequest) -> HttpResponse:
        entries = parse_feedback(json_loads(await request.body(self.max_body_bytes)))
        return _json(await self.dataplane.feedback(entries))

    # --- OpenAI-compatible generation ---------------------------------------------------------

    async def openai_models(self, request: HttpRequest) -> HttpResponse:
        created = int(time.time())
        data = [
            {"id": m.name, "object": "model", "created": created, "owned_by": "inferd"}
            for m in self.dataplane.generation_models()
        ]
        return _json({"object": "list", "data": data})

    async def completions(self, request: HttpRequest) -> HttpResponse:
        return await self._generate_openai(request, chat=False)

    async def chat_completions(self, request: HttpRequest) -> HttpResponse:
        return await self._generate_openai(request, chat=True)

    async def _generate_openai(self, request: HttpRequest, chat: bool) -> HttpResponse:
        body = json_loads(await request.body(self.max_body_bytes))
        name = body.get("model") if isinstance(body, dict) else None
        model = self.dataplane.generator(name if isinstance(name, str) else "")
        assert model.engine is not None and model.spec is not None
        options = model.spec.generation or GenerationSpec()
        parsed = openai.parse_request(body, chat, options.default_max_tokens)
        deltas = model.engine.stream(model.engine.encode(parsed.prompt), parsed.params)
        kind = "chatcmpl" if chat else "cmpl"
        answer_id = f"{kind}-{request.id}"
        headers = {"x-request-id": request.id}
        if parsed.stream:
            chunks = openai.sse_chunks(parsed, answer_id, deltas)
            return StreamingResponse(chunks, headers=headers)

        text, last = await _unless_disconnected(request, _collect(deltas))
        return _json(openai.completion(parsed, answer_id, text, last), headers=headers)

    async def generate(self, request: HttpRequest) -> HttpResponse:
        return await self._generate_v2(request, stream=False)

    async def generate_stream(self, request: HttpRequest) -> HttpResponse:
        return await self._generate_v2(request, stream=True)

    async def _generate_v2(self, request: HttpRequest, stream: bool) -> HttpResponse:
        model = self.dataplane.generator(request.params["model"])
        assert model.engine is not None
        options = model.spec.generation or GenerationSpec()
        body = json_loads(await request.body(self.max_body_bytes))
        parsed = v2_generate.parse_generate(body, model.name, options.default_max_tokens)
        deltas = model.engine.stream(model.engine.encode(parsed.prompt), parsed.params)
        headers = {"x-request-id": request.id}
        if stream:
            events = v2_generate.sse_events(model.name, model.version, deltas)
            return StreamingResponse(events, headers=headers)
        text, last = await _unless_disconnected(request, _collect(deltas))
        return _json(v2_generate.reply(model.name, model.version, text, last), headers=headers)

    async def prometheus(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(self.metrics.render(), content_type="text/plain; version=0.0.4")


def create_app(
    repository_path: Path,
    *,
    trust_code: bool = False,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    store_url: str | None = None,
    retention_days: float = 30.0,
) -> HttpServer:
    """The ASGI app serving every model in `repository_path`; with a store URL it records
    decisions' actions (and delivers them) and the models' prediction logs."""
    return HttpServer(
        repository_path,
        trust_code=trust_code,
        api_key=api_key,
        max_body_bytes=max_body_bytes,
        store_url=store_url,
        retention_days=retention_days,
    )
