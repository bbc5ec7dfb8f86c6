"""The Open Inference Protocol's generate extension: `/v2/models/{m}/generate[_stream]`.

Triton's shape: `{"text_input": "...", "parameters": {"max_tokens": 20, ...}}` (sampling
options may also sit at the top level) answered by `{"model_name", "model_version",
"text_output"}`; the stream sends one such object per piece of text as server-sent events,
the last with `finish_reason`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from inferd.api.openai import GenerationRequest, parse_request
from inferd.codecs import json_dumps
from inferd.errors import BadRequestError
from inferd.generate.request import Delta

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
