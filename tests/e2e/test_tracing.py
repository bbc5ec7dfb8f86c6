"""OpenTelemetry end to end: a real `inferd serve --otel-exporter otlp` sends its spans to an
OTLP/HTTP receiver on loopback; the client's traceparent is continued, and the webhook its
decision calls receives the same trace in its own traceparent header."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.conftest import BUNDLED, Server, start_server, stop_server
from tests.support.webhook import Received, Receiver

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
MALIGNANT = BUNDLED / "breast-cancer" / "eval" / "test.jsonl"


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Receiver]]:
    root = tmp_path_factory.mktemp("tracing")
    shutil.copytree(BUNDLED / "breast-cancer", root / "repo" / "breast-cancer")
    receiver = Receiver()
    receiver.start()
    server = start_server(
        root / "repo",
        root / "server.log",
        "--otel-exporter",
        "otlp",
        "--otel-endpoint",
        receiver.url(""),
        env={
            "REVIEW_WEBHOOK_URL": receiver.url("/review"),
            "INFERD_ALLOW_ENV": "REVIEW_WEBHOOK_URL",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    )
    try:
        yield server, receiver
    finally:
        stop_server(server.process)
        receiver.stop()


def _spans(received: list[Received]) -> list[tuple[str, str, str]]:
    """(name, trace id, parent span id) of every span the collector received."""
    found = []
    for request in received:
        export = ExportTraceServiceRequest.FromString(request.body)
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    found.append((span.name, span.trace_id.hex(), span.parent_span_id.hex()))
    return found


def test_spans_reach_the_collector_and_the_webhook_joins_the_trace(
    traced: tuple[Server, Receiver],
) -> None:
    server, receiver = traced
    malignant = next(
        json.loads(line)["instance"]
        for line in MALIGNANT.read_text().splitlines()
        if json.loads(line)["target"] == "malignant"
    )
    response = httpx.post(
        f"{server.url}/v1/models/breast-cancer:predict",
        json={"instances": [malignant]},
        headers={"traceparent": PARENT},
        timeout=30,
    )
    assert response.status_code == 200 and response.json()["predictions"][0]["decisions"]

    def has_stages(received: list[Received]) -> bool:
        names = {name for name, trace, _ in _spans(received) if trace == TRACE_ID}
        return {"inferd.queue", "inferd.model", "POST /v1/models/breast-cancer:predict"} <= names

    assert receiver.wait_for("/v1/traces", has_stages, timeout_s=30)
    spans = _spans(receiver.at("/v1/traces"))
    server_span = next(s for s in spans if s[0].startswith("POST ") and s[1] == TRACE_ID)
    assert server_span[2] == "b7ad6b7169203331"  # the caller's span is its parent
    assert any(name == "inferd.batch" for name, _, _ in spans)

    assert receiver.wait_for("/review", lambda got: bool(got), timeout_s=30)
    hook = receiver.at("/review")[0]
    assert hook.headers["traceparent"].split("-")[1] == TRACE_ID
