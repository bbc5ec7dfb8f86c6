"""Fixtures for the dispatcher tests: a SQLite store, a real webhook receiver, a dispatcher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inferd.actions import Dispatcher
from inferd.store import ActionRecord, Store, StoredAction, default_store_url, open_store
from tests.support.webhook import Receiver

MakeDispatcher = Callable[..., Awaitable[Dispatcher]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(default_store_url(tmp_path))
    yield opened
    opened.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    started.start()
    yield started
    started.stop()


@pytest.fixture
def outcomes() -> list[tuple[str, str, str]]:
    """What the dispatchers made by ``dispatcher`` reported, (model, kind, outcome) each."""
    return []


@pytest.fixture
async def dispatcher(
    store: Store, outcomes: list[tuple[str, str, str]]
) -> AsyncIterator[MakeDispatcher]:
    made: list[Dispatcher] = []

    async def make(trust_code: bool = False, **kw: Any) -> Dispatcher:
        kw.setdefault("on_outcome", lambda *outcome: outcomes.append(outcome))
        started = Dispatcher(store, trust_code=trust_code, **kw)
        await started.start()
        made.append(started)
        return started

    yield make
    for started in made:
        await asyncio.wait_for(started.stop(), 20)


def webhook(key: str, url: str, model: str = "m", **target: Any) -> ActionRecord:
    return ActionRecord(
        model=model,
        version="1",
        request_id=f"req-{key}",
        item=0,
        decision="review",
        action="review.webhook",
        kind="webhook",
        target={"url": url, **target},
        event={"key": key, "model": model},
        idempotency_key=key,
        created_at=time.time(),
    )


def enqueue(store: Store, dispatcher: Dispatcher | None, *actions: ActionRecord) -> None:
    """Save actions (as the request path does) and, given a dispatcher, notify it."""
    store.save([], actions)
    if dispatcher is not None:
        dispatcher.notify({a.model for a in actions})


def by_key(store: Store) -> dict[str, StoredAction]:
    return {a.idempotency_key: a for a in store.list_actions(limit=10_000)}


async def until(
    store: Store, condition: Callable[[dict[str, StoredAction]], bool], timeout: float = 15.0
) -> dict[str, StoredAction]:
    """Poll the store (test side only) until the actions reach a state; that state."""
    end = time.monotonic() + timeout
    while True:
        actions = await asyncio.to_thread(by_key, store)
        if condition(actions):
            return actions
        assert time.monotonic() < end, f"not reached; actions now: {actions}"
        await asyncio.sleep(0.01)


def settled(*keys: str) -> Callable[[dict[str, StoredAction]], bool]:
    """The condition: these actions are delivered or failed."""
    return lambda actions: all(
        k in actions and actions[k].state in ("delivered", "failed") for k in keys
    )


async def counted(outcomes: list[Any], total: int, timeout: float = 15.0) -> list[Any]:
    """The outcomes once `total` have been reported: the dispatcher reports one just after
    the store has it, so a test that saw the store settle may be a moment early."""
    end = time.monotonic() + timeout
    while len(outcomes) < total:
        assert time.monotonic() < end, f"only {len(outcomes)} of {total} outcomes: {outcomes}"
        await asyncio.sleep(0.01)
    return outcomes
