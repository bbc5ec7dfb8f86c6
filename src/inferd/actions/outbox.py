"""The store side of a running server: the store, its group-committing writer, the action
dispatcher and retention, started and stopped with the server.

Under `inferd serve --workers N` every worker writes through its own writer (SQLite takes one
writer at a time, in WAL; PostgreSQL many), but only one, the primary, runs the dispatcher and
retention: it finds the others' actions with its once-a-second poll, and each action is
delivered by one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from inferd.actions import Dispatcher
from inferd.spec.environment import Environment
from inferd.store import Store, StoreWriter, open_store

logger = logging.getLogger("inferd.server")

PRUNE_EVERY_S = 3600.0


class Outbox:
    """Opens the store at construction (a bad URL fails before the server starts)."""

    def __init__(
        self,
        url: str,
        *,
        trust_code: bool,
        environment: Environment | None = None,
        retention_days: float,
        on_outcome: Callable[[str, str, str], None] | None = None,
        deliver: bool = True,
    ) -> None:
        self.store: Store = open_store(url)
        self.deliver = deliver
        """Whether this process delivers the outbox and prunes the store (the primary)."""
        self.retention_s = retention_days * 86400.0
        self.dispatcher = Dispatcher(
            self.store, trust_code=trust_code, environment=environment, on_outcome=on_outcome
        )
        self.writer = StoreWriter(self.store, on_saved=self.dispatcher.notify if deliver else None)
        self._pruner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.writer.start()
        if not self.deliver:
            return
        await self.dispatcher.start()
        self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())

    async def stop(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        if self.deliver:
            await self.dispatcher.stop()
        await asyncio.to_thread(self.writer.close)
        self.store.close()

    async def _prune_forever(self) -> None:
        """Forget predictions and delivered actions older than the retention period (pending
        and failed actions are kept until they are delivered or looked at)."""
        while True:
            try:
                before = time.time() - self.retention_s
                predictions, actions = await asyncio.to_thread(self.store.prune, before)
                if predictions or actions:
                    logger.info(
                        "retention: removed %d predictions and %d delivered actions",
                        predictions,
                        actions,
                    )
            except Exception:
                logger.exception("pruning the store failed; trying again later")
            await asyncio.sleep(PRUNE_EVERY_S)
