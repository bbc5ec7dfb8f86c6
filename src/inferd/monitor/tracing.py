"""OpenTelemetry traces of requests, stages and batches (the official SDK, imported only
when tracing is on: `inferd serve --otel-exporter otlp|console`).

- A server span per request, continuing the caller's trace when it sends a W3C
  `traceparent` header.
- A child span per stage of each item (queue, preprocess, model, postprocess), placed by the
  durations the pipeline measured, ending when the item's answer came back.
- A span per batch (`inferd.batch`), made by the first of its items to come back; each
  item's model span links to it, so a trace shows which requests shared a batch.
- The request's trace context is kept with its webhook actions and sent as `traceparent`
  when they are delivered, so the receiver's work joins the same trace.

Off by default; when off nothing here is imported and the request path checks one None.
Standard `OTEL_*` variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, ...) are honoured by the SDK.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from inferd.pipeline import ItemResult

EXPORTERS = ("otlp", "console")
_BATCHES_KEPT = 4096  # recent batch spans remembered so later items can link to them


class Tracing:
    """The server's tracer; one per server."""

    def __init__(
        self, exporter: str | None = None, endpoint: str | None = None, processor: Any = None
    ) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        name = os.environ.get("OTEL_SERVICE_NAME", "inferd")
        self.provider = TracerProvider(resource=Resource.create({"service.name": name}))
        if processor is None:
            processor = BatchSpanProcessor(_exporter(exporter or "otlp", endpoint))
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("inferd")
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self._batches: OrderedDict[int, Any] = OrderedDict()

    @contextmanager
    def request(
        self, method: str, path: str, headers: Mapping[str, str], request_id: str
    ) -> Iterator[Any]:
        """The server span of one request (its caller's trace continued)."""
        from opentelemetry.trace import SpanKind

        parent = self._propagator.extract(carrier=headers)
        with self.tracer.start_as_current_span(
            f"{method} {path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": path,
                "inferd.request_id": request_id,
            },
        ) as span:
            yield span

    def item(self, model: str, version: str, result: ItemResult, queue_s: float) -> None:
        """One item's stage spans under the current request span, ending now."""
        from opentelemetry.trace import Link

        end = time.time_ns()
        post_start = end - int(result.postprocess_s * 1e9)
        model_start = post_start - int(result.model_s * 1e9)
        pre_start = model_start - int(result.preprocess_s * 1e9)
        queue_start = pre_start - int(queue_s * 1e9)
        attributes = {"inferd.model": model, "inferd.version": version}
        batch = self._batch(model, version, result, model_start, post_start)
        for stage, start, stop in (
            ("queue", queue_start, pre_start),
            ("preprocess", pre_start, model_start),
            ("model", model_start, post_start),
            ("postprocess", post_start, end),
        ):
            links = [Link(batch.get_span_context())] if stage == "model" else None
            span = self.tracer.start_span(
                f"inferd.{stage}", start_time=start, attributes=attributes, links=links
            )
            span.end(end_time=stop)

    def _batch(self, model: str, version: str, result: ItemResult, start: int, end: int) -> Any:
        """The span of the item's batch, made by the first item of it to come back."""
        from opentelemetry.trace import Link

        span = self._batches.get(result.batch)
        if span is None:
            links = [Link(self._trace.get_current_span().get_span_context())]
            span = self.tracer.start_span(
                "inferd.batch",
                context=self._trace.set_span_in_context(self._trace.INVALID_SPAN),
                start_time=start,
                links=links,
                attributes={
                    "inferd.model": model,
                    "inferd.version": version,
                    "inferd.batch.size": result.batch_size,
                },
            )
            span.end(end_time=end)
            self._batches[result.batch] = span
            if len(self._batches) > _BATCHES_KEPT:
                self._batches.popitem(last=False)
        return span

    def traceparent(self) -> str | None:
        """The current span's W3C traceparent, for an action to carry to its receiver."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier.get("traceparent")

    def close(self) -> None:
        self.provider.shutdown()


def _exporter(kind: str, endpoint: str | None) -> Any:
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind != "otlp":
        raise ValueError(f"the trace exporter is {', '.join(EXPORTERS)}; got {kind!r}")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if endpoint is not None and not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint)


__all__ = ["EXPORTERS", "Tracing"]
