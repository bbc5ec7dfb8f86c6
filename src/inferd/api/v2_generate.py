"""The Open Inference Protocol's generate extension: `/v2/models/{m}/generate[_stream]`.

Triton's shape: `{"text_input": "...", "parameters": {"max_tokens": 20, ...}}` (sampling
options may also sit at the top level) answered by `{"model_name", "model_version",
"text_output"}`; the stream sends one such object per piece of text as server-sent events,
the last with `finish_reason`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from inferd.api.common import collect, generation_model, json_response, unless_disconnected
from inferd.api.openai import GenerationRequest, parse_request
from inferd.codecs import json_dumps, json_loads
from inferd.dataplane import DataPlane
from inferd.errors import BadRequestError
from inferd.generate.request import Delta
from inferd.http.messages import HttpRequest, HttpResponse, StreamingResponse
from inferd.spec import GenerationSpec

_RESERVED = {"text_input", "parameters", "id", "model", "prompt", "messages", "stream"}


def parse_generate(body: Any, model: str, default_max_tokens: int) -> GenerationRequest:
    if not isinstance(body, dict):
        raise BadRequestError('the body must be a JSON object {"text_input": "...", ...}')
    text = body.get("text_input")
    if not isinstance(text, str):
        raise BadRequestError("text_input must be a string: the prompt to continue")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequestError("parameters must be an object of sampling options")
    options = {k: v for k, v in body.items() if k not in _RESERVED}
    options.update({k: v for k, v in parameters.items() if k not in _RESERVED})
    return parse_request({**options, "model": model, "prompt": text}, False, default_max_tokens)


def reply(model: str, version: int, text: str, last: Delta) -> dict[str, Any]:
    return {
        "model_name": model,
        "model_version": str(version),
        "text_output": text,
        "finish_reason": last.finish_reason,
        "usage": {"prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens},
    }


async def sse_events(
    model: str, version: int, deltas: AsyncIterator[Delta]
) -> AsyncIterator[bytes]:
    async for delta in deltas:
        if delta.text or delta.finish_reason is not None:
            event: dict[str, Any] = {
                "model_name": model,
                "model_version": str(version),
                "text_output": delta.text,
            }
            if delta.finish_reason is not None:
                event["finish_reason"] = delta.finish_reason
            yield b"data: " + json_dumps(event) + b"\n\n"


class V2GenerateRoutes:
    """The generate extension's handlers: one answer, or server-sent events."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def generate(self, request: HttpRequest) -> HttpResponse:
        return await self._generate(request, stream=False)

    async def generate_stream(self, request: HttpRequest) -> HttpResponse:
        return await self._generate(request, stream=True)

    async def _generate(self, request: HttpRequest, stream: bool) -> HttpResponse:
        model = generation_model(self.dataplane, request.params["model"])
        options = model.spec.generation or GenerationSpec()
        body = json_loads(await request.body(self.max_body_bytes))
        parsed = parse_generate(body, model.name, options.default_max_tokens)
        deltas = await self.dataplane.generate(model.name, parsed.prompt, parsed.params)
        headers = {"x-request-id": request.id}
        if stream:
            events = sse_events(model.name, model.version, deltas)
            return StreamingResponse(events, headers=headers)
        text, last = await unless_disconnected(request, collect(deltas))
        return json_response(reply(model.name, model.version, text, last), headers=headers)
