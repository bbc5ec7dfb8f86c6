"""What one worker of `inferd serve --workers N` knows of the others.

Readiness is a shared byte per worker (set once its models serve, cleared when it drains or
dies), so any worker answers `/v2/health/ready` for the whole server. Metrics stay in each
worker's memory; every worker also answers on a private Unix socket with its own exposition,
and the worker a scrape reaches reads the others' there and adds them up
(`monitor/merging.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, MutableSequence
from pathlib import Path

logger = logging.getLogger("inferd.workers")

GATHER_TIMEOUT_S = 2.0
"""How long a scrape waits for another worker's metrics (a stuck one is left out)."""


def socket_path(run_dir: str, index: int) -> str:
    """Where worker `index` answers with its own metrics."""
    return os.path.join(run_dir, f"worker-{index}.sock")


class Siblings:
    """This worker's view of the others; `App`'s peers (see `app.Peers`)."""

    def __init__(self, index: int, flags: MutableSequence[int], run_dir: str) -> None:
        self.index = index
        self.flags = flags
        """One byte per worker: 1 while it serves."""
        self.run_dir = run_dir
        self._server: asyncio.AbstractServer | None = None

    def all_ready(self) -> bool:
        return all(self.flags)

    def mark(self, ready: bool) -> None:
        self.flags[self.index] = int(ready)

    async def listen(self, render: Callable[[], bytes]) -> None:
        """Answer the other workers' scrapes with this one's metrics."""
        path = socket_path(self.run_dir, self.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by this worker's previous life

        async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(render())
                await writer.drain()
            finally:
                writer.close()

        self._server = await asyncio.start_unix_server(answer, path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def metrics(self) -> list[bytes]:
        """The other workers' expositions; a worker that is restarting is left out."""
        others = [i for i in range(len(self.flags)) if i != self.index]
        found = await asyncio.gather(*(self._read(i) for i in others))
        return [text for text in found if text is not None]

    async def _read(self, index: int) -> bytes | None:
        path = socket_path(self.run_dir, index)
        if not Path(path).exists():
            return None
        try:
            async with asyncio.timeout(GATHER_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(path)
                try:
                    return await reader.read()
                finally:
                    writer.close()
        except (OSError, TimeoutError) as error:
            logger.warning("worker %d's metrics were left out of this scrape: %s", index, error)
            return None
