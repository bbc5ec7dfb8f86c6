"""`Steps`: where the optimize tools report their long steps. The CLI draws rich progress
bars (`inferd.cli.common.RichSteps`); a library caller or a test passes `SILENT`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

Advance = Callable[[float], None]
"""Moves the current step on by this much of its total."""


class Steps(Protocol):
    def step(self, description: str, total: float | None = None) -> AbstractContextManager[Advance]:
        """A long step (e.g. "calibrating", 200 batches); the context yields `advance`."""
        ...

    def note(self, message: str) -> None:
        """A line worth reading between steps (a measured figure, a warning)."""
        ...


class _Silent:
    @contextmanager
    def step(self, description: str, total: float | None = None) -> Iterator[Advance]:
        yield lambda amount: None

    def note(self, message: str) -> None:
        return None


SILENT: Steps = _Silent()
