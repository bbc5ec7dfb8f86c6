"""The composition root: one `ServerConfig` in, a running inferd out.

`App` builds every part of a server and wires them together: metrics, the store side
(outbox, prediction recorder), the model repository, the DataPlane over them, and the HTTP
API over the DataPlane. It is the ASGI app (for any ASGI server and the in-process tests)
and gives `inferd serve`'s own HTTP server its handler, start-up and shutdown. No other
module builds these parts for serving; none of them builds another.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from inferd.actions.outbox import Outbox
from inferd.api.routes import Api
from inferd.dataplane import DataPlane
from inferd.http.asgi import AsgiRequest, Receive, Scope, Send, send_response, serve_lifespan
from inferd.http.connection import Admit
from inferd.http.limits import DEFAULT_MAX_BODY_BYTES
from inferd.http.messages import Handler
from inferd.monitor.costs import Accounting, Pricing
from inferd.monitor.metrics import Metrics
from inferd.monitor.recording import Recorder
from inferd.monitor.watch import DEFAULT_INTERVAL_S, Watch, Watched
from inferd.repository import ModelRepository, ModelVersion, Runner
from inferd.spec import Environment

if TYPE_CHECKING:
    from inferd.monitor.tracing import Tracing

logger = logging.getLogger("inferd.app")


@dataclass(frozen=True)
class ServerConfig:
    """Everything `inferd serve` is told."""

    repository: Path
    trust_code: bool = False
    allow_env: tuple[str, ...] = ()
    """Environment variables a model.yaml may read (`${NAME}`) without `trust_code`."""
    api_key: str | None = None
    """Required on every route but health when set."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    store_url: str | None = None
    """With a store, decisions' actions are recorded and delivered, and prediction logs kept."""
    retention_days: float = 30.0
    accounting: bool = True
    """Account each prediction's CPU time, energy and cost (`--no-monitor` turns it off)."""
    pricing: Pricing = field(default_factory=Pricing)
    """The machine's price, its CPU's watts and the grid's carbon intensity."""
    monitor_interval_s: float = DEFAULT_INTERVAL_S
    """Seconds between the monitor loop's passes (figures as gauges, alerts checked)."""
    otel_exporter: str | None = None
    """"otlp" or "console": trace requests, stages and batches with OpenTelemetry."""
    otel_endpoint: str | None = None
    """The OTLP/HTTP collector (default: the SDK's, from OTEL_EXPORTER_OTLP_ENDPOINT)."""
    deployments: Deployments | None = None
    """Where model versions run when not in this process (`--engine ray`: deploy/ray.py)."""
    primary: bool = True
    """Whether this process delivers the outbox, prunes the store and runs the monitor loop:
    of `inferd serve --workers N`, only one worker does."""


class Peers(Protocol):
    """The other worker processes of `inferd serve --workers N` (`deploy/workers.py`)."""

    def all_ready(self) -> bool:
        """Whether every worker is serving: the server is ready only then."""
        ...

    async def metrics(self) -> list[bytes]:
        """The other workers' own metrics, to add up with this one's."""
        ...


class Deployments(Protocol):
    """Runs model versions' stages 2-5 outside this process (`--engine ray`: one Ray Serve
    deployment per version, `deploy/ray.py`)."""

    def runner(self, model: ModelVersion, model_dir: Path) -> Runner | None:
        """The version's runner there (None: it runs here)."""
        ...

    def close(self) -> None:
        """Leave the cluster (after every runner was stopped)."""
        ...


class App:
    """One server's parts, built from its config; started and stopped as one."""

    def __init__(self, config: ServerConfig, peers: Peers | None = None) -> None:
        self.config = config
        self.max_body_bytes = config.max_body_bytes
        self.outbox: Outbox | None = None
        self.metrics = Metrics(
            queues=lambda: self.dataplane.queue_states(),
            known_models=lambda name: self.dataplane.known(name),
            engines=lambda: self.dataplane.engine_states(),
            actions=self._outbox_counts if config.store_url else None,
            currency=config.pricing.currency,
        )
        self.accounting = Accounting(config.pricing) if config.accounting else None
        self.tracing: Tracing | None = None
        if config.otel_exporter:
            from inferd.monitor.tracing import Tracing

            self.tracing = Tracing(config.otel_exporter, config.otel_endpoint)
        if self.accounting is not None:
            for note in self.accounting.notes():
                logger.info("%s", note)
        if config.store_url:
            self.outbox = Outbox(
                config.store_url,
                trust_code=config.trust_code,
                environment=Environment.for_process(config.trust_code, config.allow_env),
                retention_days=config.retention_days,
                on_outcome=self.metrics.action_outcome,
                deliver=config.primary,
            )
        self.repository = ModelRepository(
            config.repository,
            trust_code=config.trust_code,
            on_batch=self.metrics.observe_batch,
            allow_env=config.allow_env,
            runners=config.deployments.runner if config.deployments is not None else None,
        )
        self.dataplane = DataPlane(
            self.repository,
            self.metrics,
            store=self.outbox.store if self.outbox else None,
            recorder=Recorder(
                self.outbox.writer,
                accounting=self.accounting,
                traceparent=self.tracing.traceparent if self.tracing else None,
            )
            if self.outbox
            else None,
            accounting=self.accounting,
            tracing=self.tracing,
        )
        self.api = Api(
            self.dataplane,
            self.metrics,
            api_key=config.api_key,
            max_body_bytes=config.max_body_bytes,
            tracing=self.tracing,
            gather_metrics=peers.metrics if peers is not None else None,
        )
        if peers is not None:
            self.dataplane.peers_ready = peers.all_ready
        self.handle: Handler = self.api.handle
        """One request, from any transport."""
        self.admit: Admit = self.api.admit
        """A request's headers checked before its body is read (by inferd's HTTP server)."""
        self.watch: Watch | None = None
        if self.outbox is not None and self.accounting is not None and config.primary:
            self.watch = Watch(
                self._watched,
                self.outbox.store,
                self.outbox.writer,
                self.metrics,
                interval_s=config.monitor_interval_s,
                currency=config.pricing.currency,
                gco2_per_kwh=config.pricing.grid_gco2_per_kwh,
            )

    def _watched(self) -> list[Watched]:
        """The models the monitor loop reports on: those with a prediction log."""
        found = []
        for entry in self.repository.entries():
            latest = entry.latest
            if entry.spec is None or entry.spec.prediction_log is None or latest is None:
                continue
            labels = latest.pipeline.labels if latest.pipeline is not None else None
            found.append(Watched(entry.spec, entry.path, labels))
        return found

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
        if self.watch is not None:
            self.watch.start()
        for entry in self.repository.entries():
            state = f"versions {sorted(entry.versions)}" if entry.versions else "NOT LOADED"
            logger.info("model %s: %s", entry.name, state)

    async def shutdown(self, within_s: float | None = None) -> None:
        """Stop everything; the models' queues get `within_s` to drain (None: as long as they
        take). When they do not finish, the store is closed properly all the same."""
        self.dataplane.started = False
        if self.watch is not None:
            await self.watch.stop()
        try:
            async with asyncio.timeout(within_s):
                await self.repository.stop()
        except TimeoutError:
            logger.error(
                "stopping: the models were still running when the drain's time "
                "(--drain-seconds) ran out; exiting without them"
            )
        if self.config.deployments is not None:
            await asyncio.to_thread(self.config.deployments.close)
        if self.outbox is not None:
            await self.outbox.stop()
        if self.tracing is not None:
            self.tracing.close()  # the last spans go out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] == "http":
            request = AsgiRequest(scope, receive)
            response = await self.handle(request)
            if not request.disconnected:
                await send_response(response, request, send)
        elif scope["type"] == "lifespan":
            await serve_lifespan(receive, send, self.startup, self.shutdown)


def create_app(
    repository_path: Path,
    *,
    trust_code: bool = False,
    allow_env: tuple[str, ...] = (),
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    store_url: str | None = None,
    retention_days: float = 30.0,
    accounting: bool = True,
    pricing: Pricing | None = None,
    monitor_interval_s: float = DEFAULT_INTERVAL_S,
    otel_exporter: str | None = None,
    otel_endpoint: str | None = None,
    deployments: Deployments | None = None,
) -> App:
    """The app serving every model in `repository_path` (an ASGI app)."""
    return App(
        ServerConfig(
            repository_path,
            trust_code=trust_code,
            allow_env=allow_env,
            api_key=api_key,
            max_body_bytes=max_body_bytes,
            store_url=store_url,
            retention_days=retention_days,
            accounting=accounting,
            pricing=pricing or Pricing(),
            monitor_interval_s=monitor_interval_s,
            otel_exporter=otel_exporter,
            otel_endpoint=otel_endpoint,
            deployments=deployments,
        )
    )
