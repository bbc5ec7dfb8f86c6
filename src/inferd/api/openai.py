"""OpenAI-compatible text generation: request bodies in, completion objects and SSE chunks out.

The wire format lives here: validating a `/v1/completions` or `/v1/chat/completions` body
into a prompt and `SamplingParams`, and shaping the DataPlane's generated `Delta`s into
OpenAI's objects (`text_completion`, `chat.completion`, and their `.chunk` forms for
`stream: true`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from inferd.api.common import collect, generation_model, json_response, unless_disconnected
from inferd.codecs import json_dumps, json_loads
from inferd.dataplane import DataPlane
from inferd.errors import BadRequestError
from inferd.generate.request import Delta, SamplingParams
from inferd.http.messages import HttpRequest, HttpResponse, StreamingResponse
from inferd.spec import GenerationSpec

_ROLES = ("system", "user", "assistant")


@dataclass
class GenerationRequest:
    model: str
    prompt: str
    params: SamplingParams
    stream: bool
    chat: bool
    include_usage: bool


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequestError(f"{key} must be a number; got {value!r}")
    return float(value)


def _integer(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequestError(f"{key} must be an integer; got {value!r}")
    return value


def _stops(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        return tuple(stop)
    raise BadRequestError("stop must be a string or a list of up to 4 strings")


def chat_prompt(messages: Any) -> str:
    """A simple chat template: each message as `<|role|>` and its text, then the assistant's
    turn; generation stops where the model opens another turn."""
    if not isinstance(messages, list) or not messages:
        raise BadRequestError('messages must be a non-empty list of {"role", "content"} objects')
    parts = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequestError(f"messages[{index}] must be an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise BadRequestError(f"messages[{index}].role must be one of {', '.join(_ROLES)}")
        if not isinstance(content, str):
            raise BadRequestError(f"messages[{index}].content must be a string")
        parts.append(f"<|{role}|>\n{content}\n")
    return "".join(parts) + "<|assistant|>\n"


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]
    if not isinstance(value, str):
        raise BadRequestError("prompt must be a string (one prompt per request)")
    if not value:
        raise BadRequestError("prompt is empty; send some text to continue")
    return value


def parse_request(body: Any, chat: bool, default_max_tokens: int) -> GenerationRequest:
    """Validate a completions (or chat completions) body."""
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError("model is required: the name of a generation model")
    prompt = chat_prompt(body.get("messages")) if chat else _prompt(body.get("prompt"))
    if _integer(body, "n", 1) != 1:
        raise BadRequestError("n must be 1: send one request per completion")
    limit_key = (
        "max_completion_tokens" if chat and "max_completion_tokens" in body else "max_tokens"
    )
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequestError(f"seed must be an integer; got {seed!r}")
    options = body.get("stream_options") or {}
    params = SamplingParams(
        max_tokens=_integer(body, limit_key, default_max_tokens),
        temperature=_number(body, "temperature", 1.0),
        top_p=_number(body, "top_p", 1.0),
        top_k=_integer(body, "top_k", 0),
        repetition_penalty=_number(body, "repetition_penalty", 1.0),
        seed=seed,
        stop=_stops(body) + (("<|",) if chat else ()),
        ignore_eos=bool(body.get("ignore_eos", False)),
    )
    return GenerationRequest(
        model=model,
        prompt=prompt,
        params=params,
        stream=bool(body.get("stream", False)),
        chat=chat,
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
    )


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _finish(reason: str | None) -> str | None:
    """OpenAI knows "stop" and "length"; an aborted or failed sequence reports "stop"."""
    return reason if reason in (None, "stop", "length") else "stop"


def completion(
    request: GenerationRequest, request_id: str, text: str, last: Delta
) -> dict[str, Any]:
    """The whole answer of a non-streaming request."""
    common = {"id": request_id, "created": int(time.time()), "model": request.model}
    usage = _usage(last.prompt_tokens, last.completion_tokens)
    if request.chat:
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": _finish(last.finish_reason)}
        return {**common, "object": "chat.completion", "choices": [choice], "usage": usage}
    choice = {
        "index": 0,
        "text": text,
        "finish_reason": _finish(last.finish_reason),
        "logprobs": None,
    }
    return {**common, "object": "text_completion", "choices": [choice], "usage": usage}


async def sse_chunks(
    request: GenerationRequest, request_id: str, deltas: AsyncIterator[Delta]
) -> AsyncIterator[bytes]:
    """Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`."""
    common = {"id": request_id, "created": int(time.time()), "model": request.model}
    kind = "chat.completion.chunk" if request.chat else "text_completion"

    def event(choice: dict[str, Any], usage: dict[str, int] | None = None) -> bytes:
        payload: dict[str, Any] = {**common, "object": kind, "choices": [choice] if choice else []}
        if usage is not None:
            payload["usage"] = usage
        return b"data: " + json_dumps(payload) + b"\n\n"

    if request.chat:
        yield event(
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        )
    async for delta in deltas:
        if delta.text:
            body = {"content": delta.text} if request.chat else {"text": delta.text}
            key = "delta" if request.chat else "text"
            choice = {"index": 0, key: body if request.chat else delta.text, "finish_reason": None}
            yield event(choice)
        if delta.finish_reason is not None:
            final: dict[str, Any] = {"index": 0, "finish_reason": _finish(delta.finish_reason)}
            final["delta" if request.chat else "text"] = {} if request.chat else ""
            yield event(final)
            if request.include_usage:
                yield event({}, _usage(delta.prompt_tokens, delta.completion_tokens))
    yield b"data: [DONE]\n\n"


class OpenAIRoutes:
    """The OpenAI-compatible routes' handlers: models, completions, chat completions."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def models(self, request: HttpRequest) -> HttpResponse:
        created = int(time.time())
        data = [
            {"id": m.name, "object": "model", "created": created, "owned_by": "inferd"}
            for m in self.dataplane.generation_models()
        ]
        return json_response({"object": "list", "data": data})

    async def completions(self, request: HttpRequest) -> HttpResponse:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: HttpRequest) -> HttpResponse:
        return await self._generate(request, chat=True)

    async def _generate(self, request: HttpRequest, chat: bool) -> HttpResponse:
        body = json_loads(await request.body(self.max_body_bytes))
        name = body.get("model") if isinstance(body, dict) else None
        model = generation_model(self.dataplane, name if isinstance(name, str) else "")
        options = model.spec.generation or GenerationSpec()
        parsed = parse_request(body, chat, options.default_max_tokens)
        deltas = await self.dataplane.generate(model.name, parsed.prompt, parsed.params)
        answer_id = f"{'chatcmpl' if chat else 'cmpl'}-{request.id}"
        headers = {"x-request-id": request.id}
        if parsed.stream:
            return StreamingResponse(sse_chunks(parsed, answer_id, deltas), headers=headers)
        text, last = await unless_disconnected(request, collect(deltas))
        return json_response(completion(parsed, answer_id, text, last), headers=headers)
