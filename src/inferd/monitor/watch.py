"""The monitor loop: every interval, each logged model's report is rebuilt from the store,
its figures become gauges, and its `alerts:` are checked.

An alert fires when its rule turns true: its actions go into the same durable outbox as
decide rules' actions (delivered at least once, with the same retries), keyed by the breach
episode, so a rule that stays true fires once, and fires again only after it was false in
between. A rule over a figure not known yet (null) is false. The reports are built in a
thread; only the outbox write runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inferd.errors import EvaluationError
from inferd.expression import parse, truth
from inferd.monitor.figures import figures
from inferd.monitor.metrics import Metrics
from inferd.monitor.recording import action_target, idempotency_key
from inferd.monitor.report import report_from_store
from inferd.spec import AlertSpec, ModelSpec
from inferd.store import ActionRecord, Store, StoreWriter

logger = logging.getLogger("inferd.monitor")

DEFAULT_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Watched:
    """A model the loop reports on: its spec, its folder and its class labels."""

    spec: ModelSpec
    folder: Path
    labels: Sequence[str] | None


class Alerts:
    """Which alerts are in breach now, and the actions a new breach calls for."""

    def __init__(self) -> None:
        self._breached: dict[tuple[str, str, str], float] = {}  # → when the episode began

    def check(
        self,
        watched: Watched,
        version: str,
        found: dict[str, float | None],
        now: float,
    ) -> list[ActionRecord]:
        spec = watched.spec
        actions: list[ActionRecord] = []
        for alert in spec.alerts:
            key = (spec.name, version, alert.name)
            if not _fires(alert, found):
                if self._breached.pop(key, None) is not None:
                    logger.info("alert %s of %s v%s recovered", alert.name, spec.name, version)
                continue
            if key in self._breached:
                continue  # the same episode: it fired when it began
            self._breached[key] = now
            logger.warning(
                "alert %s of %s v%s fired: %s", alert.name, spec.name, version, alert.when
            )
            actions += _records(watched, version, alert, found, now)
        return actions


def _fires(alert: AlertSpec, found: dict[str, float | None]) -> bool:
    try:
        return truth(parse(alert.when), found)
    except EvaluationError:  # a comparison with a figure not known yet
        return False


def _records(
    watched: Watched, version: str, alert: AlertSpec, found: dict[str, Any], now: float
) -> list[ActionRecord]:
    spec = watched.spec
    episode = f"alert:{alert.name}:{now:.3f}"
    records = []
    for index, action in enumerate(alert.actions):
        key = idempotency_key(spec.name, episode, 0, alert.name, index)
        event = {
            "alert": alert.name,
            "description": alert.description,
            "when": alert.when,
            "model": spec.name,
            "version": version,
            "figures": found,
            "time": datetime.fromtimestamp(now, UTC).isoformat(),
            "idempotency_key": key,
        }
        records.append(
            ActionRecord(
                model=spec.name,
                version=version,
                request_id=episode,
                item=0,
                decision=alert.name,
                action=f"{alert.name}.{index}.{action.type}",
                kind=action.type,
                target=action_target(action, watched.folder),
                event=event,
                idempotency_key=key,
                created_at=now,
            )
        )
    return records


class Watch:
    """The loop over the logged models; `check` is one pass (tests call it directly)."""

    def __init__(
        self,
        models: Callable[[], Iterable[Watched]],
        store: Store,
        writer: StoreWriter,
        metrics: Metrics,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        currency: str | None = None,
        gco2_per_kwh: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.models = models
        self.store = store
        self.writer = writer
        self.metrics = metrics
        self.interval_s = interval_s
        self.currency = currency
        self.gco2_per_kwh = gco2_per_kwh
        self.alerts = Alerts()
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="inferd-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # a bad pass must not end the loop
                logger.exception("the monitor pass failed; trying again in %.0f s", self.interval_s)

    async def check(self) -> list[ActionRecord]:
        """Report on every logged model, set the gauges, and enqueue the alerts that fired."""
        actions = await asyncio.to_thread(self._reports)
        if actions:
            await self.writer.save([], actions)
        return actions

    def _reports(self) -> list[ActionRecord]:
        now = self._clock()
        actions: list[ActionRecord] = []
        for watched in self.models():
            if watched.spec.prediction_log is None:
                continue
            report = report_from_store(
                self.store,
                watched.spec,
                watched.folder,
                labels=watched.labels,
                now=now,
                currency=self.currency,
                gco2_per_kwh=self.gco2_per_kwh,
            )
            for version, entry in report["versions"].items():
                self.metrics.quality.set(watched.spec.name, version, entry)
                actions += self.alerts.check(watched, version, figures(entry), now)
        return actions


__all__ = ["DEFAULT_INTERVAL_S", "Alerts", "Watch", "Watched"]
