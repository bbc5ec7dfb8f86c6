"""What every protocol adapter shares: JSON answers, errors as `{"error": ...}`, request
ids, deadlines, and cancelling a request's work when its client goes away."""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from inferd.codecs import json_dumps
from inferd.dataplane import DataPlane, Served
from inferd.errors import (
    BadRequestError,
    InferdError,
    MethodNotAllowedError,
    ModelNotReadyError,
    OverloadedError,
)
from inferd.generate.request import Delta
from inferd.http.messages import HttpRequest, HttpResponse
from inferd.repository import ModelVersion

TIMEOUT_HEADER = "inferd-timeout-ms"
T = TypeVar("T")

_request_ids = itertools.count(1)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_id_prefix = os.urandom(6).hex()
"""Per process, so generated request ids stay unique across restarts (the store keeps them)."""


def new_request_id() -> str:
    return f"{_id_prefix}-{next(_request_ids)}"


def client_request_id(request: HttpRequest) -> str | None:
    """The client's own X-Request-Id, when it sent a usable one (it names the prediction in
    the log, the actions' idempotency keys and feedback)."""
    given = request.headers.get("x-request-id")
    if given is None:
        return None
    if not _REQUEST_ID.fullmatch(given):  # not match with "$": that lets a trailing "\n" in
        raise BadRequestError(
            "X-Request-Id must be 1-128 characters of letters, digits and ._:/+=@-"
        )
    return given


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    return HttpResponse(json_dumps(content), status, headers=headers or {})


def error_response(error: InferdError, request_id: str) -> HttpResponse:
    headers = {"x-request-id": request_id} if request_id else {}
    if isinstance(error, OverloadedError | ModelNotReadyError) and error.retry_after_s:
        headers["retry-after"] = str(max(1, round(error.retry_after_s)))
    if isinstance(error, MethodNotAllowedError):
        headers["allow"] = ", ".join(error.allowed)
    return json_response({"error": error.message}, error.status_code, headers)


REPLICA_HEADER = "x-inferd-replica"


def answer_headers(served: Served, request_id: str) -> dict[str, str]:
    """An answer's headers: its request id, and the replica that ran it when it ran in
    another process (`--engine ray`)."""
    headers = {"x-request-id": request_id}
    served_by = served.served_by
    if served_by is not None:
        headers[REPLICA_HEADER] = served_by
    return headers


def deadline(request: HttpRequest, parameters: dict[str, Any] | None) -> float | None:
    """time.monotonic() by which the request must have run: from a `timeout_ms` parameter
    or the Inferd-Timeout-Ms header, counted from when the request arrived (reading and
    decoding it are part of its time); None when neither is given."""
    raw: Any = (parameters or {}).get("timeout_ms", request.headers.get(TIMEOUT_HEADER))
    if raw is None:
        return None
    try:
        milliseconds = float(raw)
    except (TypeError, ValueError):
        raise BadRequestError(f"timeout_ms must be a number of milliseconds; got {raw!r}") from None
    if not math.isfinite(milliseconds) or milliseconds <= 0:
        raise BadRequestError(f"timeout_ms must be positive; got {raw!r}")
    return request.arrived + milliseconds / 1000.0


async def unless_disconnected(request: HttpRequest, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (and its queued items) if the client goes away first:
    the transport cancels this handler's task, which cancels the batcher's future, which
    drops the queued item."""
    request.cancel_on_disconnect(True)
    try:
        return await work
    finally:
        request.cancel_on_disconnect(False)


async def collect(deltas: AsyncIterator[Delta]) -> tuple[str, Delta]:
    """A generation's whole text and its closing Delta (usage, finish reason)."""
    parts = []
    last = Delta("", [])
    async for delta in deltas:
        parts.append(delta.text)
        last = delta
    return "".join(parts), last


def predictive_model(
    dataplane: DataPlane, name: str, version: str | None, request: HttpRequest | None = None
) -> ModelVersion:
    """The model an inference request goes to, checked before its body is read and decoded:
    a generation model is a 400 that names the routes it does answer, and a `request` its
    model cannot take now (a full queue, a header deadline it cannot meet) is refused at
    once, the cheapest way out under overload."""
    model = dataplane.model(name, version)
    if model.pipeline is None:
        raise BadRequestError(
            f"model {name!r} generates text: use POST /v1/completions, "
            f"/v1/chat/completions or /v2/models/{name}/generate"
        )
    if request is not None:
        try:  # the header's deadline: a body parameter may override it, checked later
            early = deadline(request, None)
        except BadRequestError:
            early = None
        model.admit(early)
    return model


def generation_model(dataplane: DataPlane, name: str) -> ModelVersion:
    """The model a generation request goes to; a predictive model is a 400 that names the
    routes it does answer."""
    model = dataplane.model(name)
    if model.engine is None:
        raise BadRequestError(
            f"model {name!r} does not generate text (task {model.spec.task}); use "
            f"/v2/models/{name}/infer or /v1/models/{name}:predict"
        )
    return model
