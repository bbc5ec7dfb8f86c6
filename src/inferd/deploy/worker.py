"""One worker process of `inferd serve --workers N`: a whole server (its own models, batchers
and event loop) on the port the workers share."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import MutableSequence
from dataclasses import dataclass, replace

from inferd.app import App, ServerConfig
from inferd.deploy.process import exit_without_stuck_threads, follow_parent
from inferd.deploy.siblings import Siblings
from inferd.errors import ListenError, StartupError
from inferd.hardware import share_cores
from inferd.http.limits import HttpLimits
from inferd.http.server import HttpService

LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


@dataclass(frozen=True)
class WorkerPlan:
    """What every worker is started with (sent to it when it is spawned)."""

    config: ServerConfig
    limits: HttpLimits
    drain_s: float
    host: str
    port: int
    threads: int
    """Threads each model may use (its share of the cores) unless model.yaml says."""
    run_dir: str
    """Where the workers answer each other's scrapes (`siblings.py`)."""
    log_level: str
    supervisor: int
    """The supervisor's pid."""
    listener: socket.socket | None = None
    """The supervisor's listening socket, shared where the OS has no SO_REUSEPORT."""


def run_worker(plan: WorkerPlan, index: int, flags: MutableSequence[int]) -> None:
    """A worker's whole life (the target of its process); exits 1 when it cannot start."""
    follow_parent(plan.supervisor)
    logging.basicConfig(level=plan.log_level.upper(), format=LOG_FORMAT)
    share_cores(plan.threads)
    siblings = Siblings(index, flags, plan.run_dir)
    try:
        app = App(replace(plan.config, primary=index == 0), peers=siblings)
    except Exception as error:  # a store that cannot be opened
        logging.getLogger("inferd.server").error("cannot open the store: %s", error)
        sys.exit(1)

    async def startup() -> None:
        await app.startup()
        await siblings.listen(app.metrics.render)
        siblings.mark(ready=True)

    async def shutdown(within_s: float | None) -> None:
        siblings.mark(ready=False)
        await siblings.close()
        await app.shutdown(within_s)

    service = HttpService(
        app.handle,
        startup=startup,
        shutdown=shutdown,
        limits=plan.limits,
        admit=app.admit,
        drain_s=plan.drain_s,
    )
    try:
        if plan.listener is not None:
            service.run_on(plan.listener)
        else:
            service.run(plan.host, plan.port, reuse_port=True)
    except (ListenError, StartupError) as error:
        logging.getLogger("inferd.server").error("%s", error)
        sys.exit(1)
    exit_without_stuck_threads()
