"""inferd's HTTP API: every route on one line each, and what every request goes through.

Each route converts its protocol's wire format and calls one DataPlane method (see v2.py,
v1.py, openai.py, v2_generate.py); here a request is routed, authenticated and given its
request id, its errors become `{"error": "..."}` with the status their class carries, and it
is counted. A client that disconnects has its queued work cancelled.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from inferd.api.common import client_request_id, error_response, json_response, new_request_id
from inferd.api.openai import OpenAIRoutes
from inferd.api.openapi import openapi_document
from inferd.api.v1 import V1Routes
from inferd.api.v2 import V2Routes
from inferd.api.v2_generate import V2GenerateRoutes
from inferd.dataplane import DataPlane
from inferd.errors import InferdError, UnauthorizedError
from inferd.http.messages import HttpRequest, HttpResponse
from inferd.http.routing import Router
from inferd.monitor.merging import merge_expositions
from inferd.monitor.metrics import Metrics

if TYPE_CHECKING:
    from inferd.monitor.tracing import Tracing

logger = logging.getLogger("inferd.api")


class Api:
    """The routes over one DataPlane; `handle` is what a transport calls for each request."""

    def __init__(
        self,
        dataplane: DataPlane,
        metrics: Metrics,
        *,
        api_key: str | None,
        max_body_bytes: int,
        tracing: Tracing | None = None,
        gather_metrics: Callable[[], Awaitable[list[bytes]]] | None = None,
    ) -> None:
        self.metrics = metrics
        self.gather_metrics = gather_metrics
        """The other `--workers` processes' metrics, added up with this one's on a scrape."""
        self.tracing = tracing
        if tracing is not None:
            self.handle = self._traced  # type: ignore[method-assign]
        self.api_key = api_key
        self.dataplane = dataplane
        self.router = self._routes(
            V2Routes(dataplane, max_body_bytes),
            V1Routes(dataplane, max_body_bytes),
            OpenAIRoutes(dataplane, max_body_bytes),
            V2GenerateRoutes(dataplane, max_body_bytes),
        )

    def _routes(
        self, v2: V2Routes, v1: V1Routes, openai: OpenAIRoutes, generate: V2GenerateRoutes
    ) -> Router:
        router = Router()
        post = ("POST",)
        for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
            router.add(prefix, v2.model_metadata)
            router.add(prefix + "/ready", v2.model_ready)
            router.add(prefix + "/infer", v2.infer, post)
        router.add("/v2/models/{model}/generate", generate.generate, post)
        router.add("/v2/models/{model}/generate_stream", generate.generate_stream, post)
        for prefix in ("/v1/models/{model}", "/v1/models/{model}/versions/{version}"):
            router.add(prefix, v2.model_ready)
            router.add(prefix + ":predict", v1.predict, post)
        router.add("/v1/feedback", v1.feedback, post)
        router.add("/v1/models/{model}/report", v1.report)
        router.add("/v1/models", openai.models)
        router.add("/v1/completions", openai.completions, post)
        router.add("/v1/chat/completions", openai.chat_completions, post)
        router.add("/v2/health/live", v2.live)
        router.add("/v2/health/ready", v2.ready)
        router.add("/v2", v2.server_metadata)
        router.add("/v2/repository/index", v2.index, ("GET", "POST"))
        router.add("/metrics", self.prometheus)
        router.add("/openapi.json", self.openapi)
        return router

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Route one request: auth, request id, error rendering and request counting."""
        model = ""
        request_id = ""
        try:
            handler, params = self.router.match(request.method, request.path)
            request.params = params
            request_id = new_request_id()
            request_id = request.id = client_request_id(request) or request_id
            model = params.get("model", "")
            self.admit(request.method, request.path, request.headers)
            response = await handler(request)
        except InferdError as error:
            response = error_response(error, request_id)
        except asyncio.CancelledError:
            if not request.disconnected:
                raise  # the server is shutting down
            # The client hung up: its work is dropped and nobody is left to answer.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            response = json_response({"error": "client disconnected"}, 499)
        except Exception:
            logger.exception("request %s crashed the handler", request_id)
            response = json_response(
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

    async def _traced(self, request: HttpRequest) -> HttpResponse:
        """`handle` inside a server span that continues the caller's `traceparent`."""
        assert self.tracing is not None
        with self.tracing.request(request.method, request.path, request.headers, "") as span:
            response = await Api.handle(self, request)
            span.set_attribute("http.response.status_code", response.status)
            span.set_attribute("inferd.request_id", response.headers.get("x-request-id", ""))
            return response

    def admit(self, method: str, path: str, headers: Mapping[str, str]) -> None:
        """Refuse a request without the API key (the HTTP server calls this on the headers
        alone, so the body of an unauthenticated request is never read)."""
        if self.api_key is None or path.startswith("/v2/health"):
            return
        given = headers.get("x-api-key") or ""
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = bearer[7:]
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise UnauthorizedError(
                "missing or wrong API key; send it as 'Authorization: Bearer <key>' "
                "or 'X-API-Key: <key>'"
            )

    async def openapi(self, request: HttpRequest) -> HttpResponse:
        models = sorted(entry.name for entry in self.dataplane.entries())
        return json_response(openapi_document(models))

    async def prometheus(self, request: HttpRequest) -> HttpResponse:
        body = self.metrics.render()
        if self.gather_metrics is not None:
            body = merge_expositions([body, *await self.gather_metrics()])
        return HttpResponse(body, content_type="text/plain; version=0.0.4")
