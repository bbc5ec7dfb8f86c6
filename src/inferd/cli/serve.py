"""`inferd serve`: the HTTP server over a model repository."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from inferd.cli.common import (
    DEFAULT_DATA_DIR,
    DEFAULT_REPO,
    DataDirOption,
    RepoArg,
    StoreOption,
    TrustOption,
    _fail,
    _store_url,
    parse_size,
)
from inferd.http.limits import DRAIN_S, HttpLimits

if TYPE_CHECKING:
    from inferd.app import Deployments, ServerConfig

_LIMIT_FLAGS = {
    "max_connections": "--max-connections",
    "max_header_bytes": "--max-header-size",
    "max_body_bytes": "--max-body-size",
    "header_timeout_s": "--header-timeout",
    "body_timeout_s": "--body-timeout",
    "keep_alive_s": "--keep-alive-timeout",
}
"""Each HTTP limit's flag, to name it in a refusal."""


def serve(
    repo: RepoArg = DEFAULT_REPO,
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind; 0.0.0.0 exposes it (then an --api-key is required, or "
            "--insecure)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        str,
        typer.Option(
            help="Server processes on the port, each with its own models (auto: one per "
            "core); their models' threads share the cores."
        ),
    ] = "1",
    trust_code: TrustOption = False,
    allow_env: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-env",
            help="An environment variable model.yaml may read as ${NAME} (repeat for more; "
            "also INFERD_ALLOW_ENV). Without it, or --trust-code, none is read.",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="INFERD_API_KEY", help="Require this key on every non-health route."),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Serve beyond loopback without an API key (when a proxy in front authenticates).",
        ),
    ] = False,
    max_body_size: Annotated[
        str, typer.Option(help="Largest request body accepted (413 beyond), e.g. 32MiB.")
    ] = "32MiB",
    max_header_size: Annotated[
        str, typer.Option(help="Largest request line and headers together (431 beyond).")
    ] = "64KiB",
    max_connections: Annotated[
        int, typer.Option(help="Client connections open at once (429 beyond).")
    ] = HttpLimits.max_connections,
    header_timeout: Annotated[
        float,
        typer.Option(help="Seconds from a request's first byte to its last header (408)."),
    ] = HttpLimits.header_timeout_s,
    body_timeout: Annotated[
        float,
        typer.Option(help="Seconds from a request's headers to the end of its body (408)."),
    ] = HttpLimits.body_timeout_s,
    drain_seconds: Annotated[
        float,
        typer.Option(
            help="On SIGTERM/SIGINT, seconds to finish what is in flight (requests, then the "
            "models' queues) before exiting anyway."
        ),
    ] = DRAIN_S,
    keep_alive_timeout: Annotated[
        float, typer.Option(help="Seconds an idle keep-alive connection is kept open.")
    ] = HttpLimits.keep_alive_s,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    store: StoreOption = None,
    retention_days: Annotated[
        float,
        typer.Option(help="Days logged predictions and delivered actions are kept."),
    ] = 30.0,
    price_per_hour: Annotated[
        float | None,
        typer.Option(
            help="The machine's price per hour (all cores): predictions are charged their "
            "CPU time's share of it, in --currency."
        ),
    ] = None,
    price_per_core_hour: Annotated[
        float | None, typer.Option(help="Or the price of one core for an hour.")
    ] = None,
    currency: Annotated[str, typer.Option(help="The prices' currency, named in metrics.")] = "USD",
    cpu_watts: Annotated[
        float | None,
        typer.Option(
            help="Watts per busy core for the energy estimate, used where the RAPL counters "
            "cannot be read (default 10 W: a server CPU's TDP shared by its cores)."
        ),
    ] = None,
    grid_intensity: Annotated[
        float | None,
        typer.Option(help="The grid's carbon intensity in gCO2e per kWh: adds CO2e figures."),
    ] = None,
    monitor_interval: Annotated[
        float,
        typer.Option(
            help="Seconds between the monitor's passes over the prediction log: live "
            "accuracy, fairness and drift as metrics, and model.yaml alerts checked."
        ),
    ] = 60.0,
    otel_exporter: Annotated[
        str | None,
        typer.Option(
            envvar="OTEL_TRACES_EXPORTER",
            help="Trace requests, stages and batches with OpenTelemetry: otlp (to "
            "--otel-endpoint) or console (spans on stdout). Off by default.",
        ),
    ] = None,
    otel_endpoint: Annotated[
        str | None,
        typer.Option(
            help="The OTLP/HTTP collector, e.g. http://127.0.0.1:4318 (default: the "
            "SDK's, from OTEL_EXPORTER_OTLP_ENDPOINT)."
        ),
    ] = None,
    monitor: Annotated[
        bool,
        typer.Option(
            "--monitor/--no-monitor",
            help="Account CPU time, energy and cost per prediction (--no-monitor: off).",
        ),
    ] = True,
    engine: Annotated[
        str,
        typer.Option(
            help="Where models run: local (this process) or ray (each model version a Ray "
            "Serve deployment, replicas from model.yaml scale:; pip install 'inferd[ray]').",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="With --engine ray: the Ray cluster to join (host:port of its head, or "
            "ray://host:10001); default: start a local one under --data-dir.",
        ),
    ] = None,
) -> None:
    """Serve every model in REPO over HTTP (Open Inference Protocol V2 and KServe V1)."""
    from inferd.app import App, ServerConfig
    from inferd.deploy.process import exit_without_stuck_threads
    from inferd.deploy.worker import WorkerPlan
    from inferd.deploy.workers import WorkersError, parse_workers, serve_workers, thread_share
    from inferd.errors import ListenError, StartupError
    from inferd.http.server import HttpService, is_loopback
    from inferd.monitor.costs import Pricing

    if not repo.is_dir():
        raise _fail(f"model repository {repo} is not a folder")
    try:
        worker_count = parse_workers(workers)
    except ValueError as error:
        raise _fail(str(error)) from None
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if api_key is None and not insecure and not is_loopback(host):
        raise _fail(
            f"refusing to serve on {host} without an API key: anyone who can reach it could "
            "use every model; set --api-key (or INFERD_API_KEY), or pass --insecure when a "
            "proxy in front authenticates"
        )
    try:
        limits = HttpLimits(
            max_connections=max_connections,
            max_header_bytes=parse_size(max_header_size),
            max_body_bytes=parse_size(max_body_size),
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            keep_alive_s=keep_alive_timeout,
        )
    except ValueError as error:
        field, _, complaint = str(error).partition(" ")
        raise _fail(f"{_LIMIT_FLAGS.get(field, field)} {complaint}") from None
    if not (drain_seconds >= 0 and math.isfinite(drain_seconds)):
        raise _fail(f"--drain-seconds must be 0 or more; got {drain_seconds}")
    if retention_days <= 0:
        raise _fail("--retention-days must be positive")
    for flag, value in (
        ("--price-per-hour", price_per_hour),
        ("--price-per-core-hour", price_per_core_hour),
        ("--cpu-watts", cpu_watts),
        ("--grid-intensity", grid_intensity),
    ):
        if value is not None and not (value >= 0 and math.isfinite(value)):
            raise _fail(f"{flag} must be a finite number of at least 0; got {value}")
    if not (monitor_interval > 0 and math.isfinite(monitor_interval)):
        raise _fail(
            f"--monitor-interval must be a positive number of seconds; got {monitor_interval}"
        )
    if otel_exporter == "none":  # OTEL_TRACES_EXPORTER's own word for off
        otel_exporter = None
    if otel_exporter not in (None, "otlp", "console"):
        raise _fail(f"--otel-exporter is otlp or console; got {otel_exporter!r}")
    if price_per_hour is not None and price_per_core_hour is not None:
        raise _fail("give --price-per-hour or --price-per-core-hour, not both")
    pricing = Pricing(
        price_per_hour=price_per_hour,
        price_per_core_hour=price_per_core_hour,
        currency=currency,
        cpu_watts=cpu_watts,
        grid_gco2_per_kwh=grid_intensity,
    )
    config = ServerConfig(
        repo,
        trust_code=trust_code,
        allow_env=tuple(allow_env or ()),
        api_key=api_key,
        max_body_bytes=limits.max_body_bytes,
        store_url=_store_url(data_dir, store),
        retention_days=retention_days,
        accounting=monitor,
        pricing=pricing,
        monitor_interval_s=monitor_interval,
        otel_exporter=otel_exporter,
        otel_endpoint=otel_endpoint,
    )
    if engine != "local" or address is not None:
        config = replace(
            config, deployments=_deployments(engine, address, worker_count, config, data_dir)
        )
    if worker_count > 1:
        plan = WorkerPlan(
            config,
            limits,
            drain_seconds,
            host,
            port,
            threads=thread_share(worker_count),
            run_dir="",
            log_level=log_level,
            supervisor=os.getpid(),
        )
        try:
            serve_workers(plan, worker_count)
        except (ListenError, WorkersError) as error:
            raise _fail(str(error)) from None
        return
    try:
        application = App(config)
    except Exception as error:  # a bad URL, an unreachable database, a read-only folder
        raise _fail(f"cannot open the store: {error}") from None
    service = HttpService(
        application.handle,
        startup=application.startup,
        shutdown=application.shutdown,
        limits=limits,
        admit=application.admit,
        drain_s=drain_seconds,
    )
    try:
        service.run(host, port)
    except (ListenError, StartupError) as error:
        raise _fail(str(error)) from None
    exit_without_stuck_threads()


def _deployments(
    engine: str, address: str | None, workers: int, config: ServerConfig, data_dir: Path
) -> Deployments:
    """`--engine ray`: joined (or started) now, so a missing extra or an unreachable cluster
    fails before anything else starts."""
    from inferd.errors import StartupError

    if engine != "ray":
        if address is not None:
            raise _fail("--address names a Ray cluster: use it with --engine ray")
        raise _fail(f"--engine is local or ray; got {engine!r}")
    if workers > 1:
        raise _fail(
            "--engine ray serves from one front process (its replicas scale, by model.yaml "
            "scale:); leave out --workers"
        )
    from rich.markup import escape

    from inferd.deploy.ray import RayDeployments

    try:
        return RayDeployments.connect(address, data_dir, config.trust_code, config.allow_env)
    except StartupError as error:
        raise _fail(escape(str(error))) from None  # "[ray]" is not rich markup
