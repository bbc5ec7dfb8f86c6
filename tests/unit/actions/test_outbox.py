"""The store side of a server: only the primary of `--workers` delivers the outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

from inferd.actions.outbox import Outbox
from inferd.store import PENDING, default_store_url
from tests.support.webhook import Receiver
from tests.unit.actions.conftest import enqueue, settled, until, webhook


async def test_a_worker_that_is_not_the_primary_saves_actions_but_never_delivers_them(
    tmp_path: Path, receiver: Receiver
) -> None:
    url = default_store_url(tmp_path)
    worker = Outbox(url, trust_code=False, retention_days=1, deliver=False)
    await worker.start()
    try:
        enqueue(worker.store, None, webhook("a", receiver.url("/hook")))
        await asyncio.sleep(1.5)  # longer than a dispatcher's poll
        assert receiver.at("/hook") == []
        assert worker.store.action_counts() == {("m", PENDING): 1}
        primary = Outbox(url, trust_code=False, retention_days=1)
        await primary.start()
        try:
            await until(primary.store, settled("a"))
            assert len(receiver.at("/hook")) == 1
        finally:
            await primary.stop()
    finally:
        await worker.stop()
