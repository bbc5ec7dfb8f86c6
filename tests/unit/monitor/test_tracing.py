"""OpenTelemetry spans through a real DataPlane and API handler: a server span per request
that continues the caller's trace, stage spans under it, a batch span its items link to, and
the traceparent a webhook action carries on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from inferd.app import App, ServerConfig
from inferd.http.messages import HttpRequest
from inferd.monitor.tracing import Tracing
from tests.support import onnx_models

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class _Request(HttpRequest):
    def __init__(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(method, path)
        self._body = body
        self._headers = headers

    @property
    def headers(self) -> dict[str, str]:
        return self._headers

    async def body(self, limit: int) -> bytes:
        return self._body

    def cancel_on_disconnect(self, on: bool) -> None:
        pass


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[tuple[App, InMemorySpanExporter]]:
    onnx_models.linear_regressor(tmp_path / "repo" / "house" / "1" / "model.onnx", features=2)
    spec: dict[str, Any] = {
        "task": "regression",
        "inputs": [{"name": f, "datatype": "FP64", "shape": [1]} for f in ("a", "b")],
        "preprocess": [{"type": "tabular", "features": ["a", "b"]}],
        "postprocess": [{"type": "regress"}],
        "decide": [
            {
                "decision": "always",
                "when": "true",
                "actions": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}],
            }
        ],
    }
    (tmp_path / "repo" / "house" / "model.yaml").write_text(yaml.safe_dump(spec))
    exporter = InMemorySpanExporter()
    app = App(
        ServerConfig(
            tmp_path / "repo",
            store_url=f"sqlite:///{tmp_path / 'inferd.db'}",
            otel_exporter="console",
        )
    )
    assert app.tracing is not None
    app.tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
    await app.startup()
    try:
        yield app, exporter
    finally:
        await app.shutdown()


async def test_a_request_s_spans_continue_the_caller_s_trace(
    traced: tuple[App, InMemorySpanExporter],
) -> None:
    app, exporter = traced
    body = b'{"instances": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}'
    request = _Request("POST", "/v1/models/house:predict", body, {"traceparent": PARENT})
    response = await app.handle(request)
    assert response.status == 200
    spans = exporter.get_finished_spans()
    server = next(s for s in spans if s.name == "POST /v1/models/house:predict")
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.attributes["http.response.status_code"] == 200
    stages = [s for s in spans if s.name.startswith("inferd.") and s.name != "inferd.batch"]
    assert sorted(s.name for s in stages) == sorted(
        ["inferd.queue", "inferd.preprocess", "inferd.model", "inferd.postprocess"] * 2
    )
    assert all(s.parent is not None and s.parent.span_id == server.context.span_id for s in stages)
    assert all(s.start_time <= s.end_time for s in stages)
    batches = [s for s in spans if s.name == "inferd.batch"]
    assert batches and batches[0].attributes["inferd.model"] == "house"
    model_spans = [s for s in stages if s.name == "inferd.model"]
    batch_ids = {b.context.span_id for b in batches}
    assert all(link.context.span_id in batch_ids for s in model_spans for link in s.links)

    outbox = app.outbox
    assert outbox is not None
    actions = outbox.store.list_actions(model="house")
    parents = {a.target.get("traceparent") for a in actions}
    assert len(parents) == 1
    (parent,) = parents
    assert parent is not None and parent.split("-")[1] == TRACE_ID


def test_the_otlp_endpoint_gets_its_traces_path() -> None:
    tracing = Tracing("otlp", "http://127.0.0.1:4318")
    try:
        processor = tracing.provider._active_span_processor._span_processors[0]
        assert processor.span_exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    finally:
        tracing.close()
