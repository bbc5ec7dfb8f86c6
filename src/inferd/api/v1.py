"""KServe V1 over REST: `:predict` with instances a person writes, model readiness, and
`/v1/feedback` (inferd's own route: ground truth for logged predictions).

`GET /v1/models/{name}/report[?window=SECONDS]` is the model's four costs over a window (the
same dict `inferd report` draws; see inferd.monitor.report).

`POST /v1/feedback` takes one entry `{"request_id": ..., "item": 0, "truth": ...}` or many
as `{"feedback": [entry, ...]}`. `item` is the instance's index in its request (default 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from inferd.api.common import (
    answer_headers,
    deadline,
    json_response,
    predictive_model,
    unless_disconnected,
)
from inferd.codecs import json_loads
from inferd.dataplane import DataPlane, Served
from inferd.errors import BadRequestError
from inferd.http.messages import HttpRequest, HttpResponse
from inferd.pipeline import Request
from inferd.store import FeedbackEntry


def predictions(served: Served) -> list[dict[str, Any]]:
    """The V1 answer: each instance's prediction, with its `decisions` when the model has
    decide rules."""
    answers = [a.prediction.as_json() for a in served.answers]
    if served.model.predictive.rules is None:
        return answers
    return [
        {**answer, "decisions": served_answer.decisions or []}
        for answer, served_answer in zip(answers, served.answers, strict=True)
    ]


async def predict(
    dataplane: DataPlane,
    name: str,
    version: str | None,
    instances: Sequence[Any],
    request_id: str,
    deadline_at: float | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A V1 request through the DataPlane, in process (what the route calls); a failing
    instance of several is named by its position."""
    request = Request(request_id, deadline_at, parameters or {}, item_word="instance")
    return predictions(await dataplane.predict(name, version, instances, request))


class V1Routes:
    """The V1 REST routes' handlers."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def predict(self, request: HttpRequest) -> HttpResponse:
        params = request.params
        name, version = params["model"], params.get("version")
        predictive_model(self.dataplane, name, version, request)
        body = json_loads(await request.body(self.max_body_bytes))
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
            raise BadRequestError('the body must be a JSON object {"instances": [...]}')
        instances = body["instances"]
        if not instances:
            raise BadRequestError('"instances" is empty; send at least one instance')
        parameters = body.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise BadRequestError('"parameters" must be a JSON object of named values')
        deadline_at = deadline(request, parameters)
        served = await unless_disconnected(
            request,
            self.dataplane.predict(
                name,
                version,
                instances,
                Request(request.id, deadline_at, parameters or {}, item_word="instance"),
            ),
        )
        return json_response(
            {"predictions": predictions(served)}, headers=answer_headers(served, request.id)
        )

    async def report(self, request: HttpRequest) -> HttpResponse:
        """The four costs of a model's predictions over a window (`?window=SECONDS`)."""
        window = query_number(request, "window")
        return json_response(await self.dataplane.report(request.params["model"], window))

    async def feedback(self, request: HttpRequest) -> HttpResponse:
        entries = parse_feedback(json_loads(await request.body(self.max_body_bytes)))
        return json_response(await self.dataplane.feedback(entries))


def query_number(request: HttpRequest, name: str) -> float | None:
    """A positive number from the query string (None when absent); 400 naming it otherwise."""
    values = parse_qs(request.query).get(name)
    if not values:
        return None
    try:
        value = float(values[-1])
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise BadRequestError(f"?{name}= must be a positive number of seconds; got {values[-1]!r}")
    return value


MAX_ENTRIES = 10_000


def parse_feedback(body: Any) -> list[FeedbackEntry]:
    """The entries of a feedback body, each checked for its request id, item and truth."""
    if not isinstance(body, dict):
        raise BadRequestError(
            'the body must be a JSON object: {"request_id": "...", "truth": ...} '
            'or {"feedback": [...]}'
        )
    raw = body.get("feedback", [body])
    if not isinstance(raw, list) or not raw:
        raise BadRequestError('"feedback" must be a non-empty list of entries')
    if len(raw) > MAX_ENTRIES:
        raise BadRequestError(f"send at most {MAX_ENTRIES} feedback entries per call")
    return [_entry(value, index if "feedback" in body else None) for index, value in enumerate(raw)]


def _entry(value: Any, index: int | None) -> FeedbackEntry:
    where = f"feedback[{index}]: " if index is not None else ""
    if not isinstance(value, dict):
        raise BadRequestError(f"{where}each entry must be an object with request_id and truth")
    unknown = set(value) - {"request_id", "item", "truth"}
    if unknown:
        raise BadRequestError(
            f"{where}unknown keys {sorted(unknown)}; an entry has request_id, item and truth"
        )
    request_id = value.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise BadRequestError(f"{where}request_id must be the request id string of a prediction")
    item = value.get("item", 0)
    if not isinstance(item, int) or isinstance(item, bool) or item < 0:
        raise BadRequestError(
            f"{where}item must be the instance's index in its request (0, 1, ...)"
        )
    if "truth" not in value:
        raise BadRequestError(f"{where}truth is missing: give the true label or value")
    return FeedbackEntry(request_id=request_id, item=item, value=value["truth"])
