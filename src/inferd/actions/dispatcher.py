"""The dispatcher: delivers the outbox at least once, in order per model.

One worker coroutine per model with pending actions takes the model's lowest-id pending action,
waits until it is due, delivers it and records the outcome; only then does it look at the next.
So a model's actions arrive in the order they were enqueued, a retrying one holds back the ones
after it, and a failed (given-up) one does not. Models deliver concurrently. A worker with
nothing pending exits; ``notify`` (from the store writer, after a commit) or the once-a-second
poll starts it again, and the poll also finds what a previous run left pending (a kill -9).

Delivery is at least once: a kill between a delivery and its record delivers it again on the
next start, with the same ``Idempotency-Key``. Store calls run in the dispatcher's own threads,
never on the event loop; ``stop`` waits for the ones in flight, so none runs after it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from inferd.actions.delivery import RETRY, Deliverer, Outcome, max_attempts, retry_delay
from inferd.spec.environment import Environment
from inferd.store.records import DELIVERED, FAILED, StoredAction
from inferd.store.store import Store

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("inferd.actions")

OutcomeCallback = Callable[[str, str, str], None]  # (model, kind, "delivered"|"retry"|"failed")


class Dispatcher:
    """Delivers the store's pending actions; ``start`` and ``stop`` on the server's loop."""

    def __init__(
        self,
        store: Store,
        *,
        trust_code: bool,
        environment: Environment | None = None,
        on_outcome: OutcomeCallback | None = None,
        clock: Callable[[], float] = time.time,
        poll_s: float = 1.0,
    ) -> None:
        self._store = store
        self._trust_code = trust_code
        self._environment = environment or Environment.for_process(trust_code)
        self._on_outcome = on_outcome
        self._clock = clock
        self._poll_s = poll_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._workers: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._deliverer: Deliverer | None = None
        self._store_threads = ThreadPoolExecutor(4, thread_name_prefix="inferd-outbox")
        self._code_threads = ThreadPoolExecutor(8, thread_name_prefix="inferd-python-action")

    async def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("the dispatcher was already started")
        from inferd import __version__  # here: the package imports this one's users

        self._loop = asyncio.get_running_loop()
        self._deliverer = Deliverer(
            trust_code=self._trust_code,
            environment=self._environment,
            user_agent=f"inferd/{__version__}",
            executor=self._code_threads,
        )
        self._poller = asyncio.create_task(self._poll(), name="inferd-outbox-poll")

    def notify(self, models: set[str]) -> None:
        """New pending actions of these models; callable from any thread."""
        loop = self._loop
        if loop is None or self._stopping or not models:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
            loop.call_soon_threadsafe(self._wake, set(models))

    async def stop(self) -> None:
        """Stop delivering (an action cut off mid-delivery stays pending) and release the
        HTTP client and threads."""
        self._stopping = True
        tasks = [task for task, _ in self._workers.values()]
        if self._poller is not None:
            tasks.append(self._poller)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        if self._deliverer is not None:
            await self._deliverer.aclose()
        self._code_threads.shutdown(wait=False, cancel_futures=True)  # user code may hang
        await asyncio.to_thread(self._store_threads.shutdown, wait=True)

    # -- workers ---------------------------------------------------------------------------

    def _wake(self, models: set[str]) -> None:
        for model in models:
            if not self._ensure_worker(model):
                self._workers[model][1].set()

    def _ensure_worker(self, model: str) -> bool:
        """Start the model's worker unless it runs; whether it was started."""
        if self._stopping or model in self._workers:
            return False
        wake = asyncio.Event()
        task = asyncio.create_task(self._work(model, wake), name=f"inferd-outbox-{model}")
        self._workers[model] = (task, wake)
        return True

    async def _poll(self) -> None:
        while True:
            try:
                models = await self._in_store(self._store.pending_models)
            except Exception:
                logger.exception("could not list the models with pending actions")
                models = []
            for model in models:
                self._ensure_worker(model)
            await asyncio.sleep(self._poll_s)

    async def _work(self, model: str, wake: asyncio.Event) -> None:
        try:
            while True:
                wake.clear()
                try:
                    action = await self._in_store(self._store.next_pending, model)
                except Exception:
                    logger.exception("could not read the next action of model %s", model)
                    await _sleep(wake, self._poll_s)
                    continue
                if action is None:
                    if wake.is_set():  # notified while reading: look again
                        continue
                    return  # no await since the read: no notification can be lost
                wait = action.next_attempt_at - self._clock()
                if wait > 0:
                    # Look again at least every poll, in case the action changed meanwhile.
                    await _sleep(wake, min(wait, self._poll_s))
                    continue
                await self._attempt(action)
        finally:
            if self._workers.get(model, (None,))[0] is asyncio.current_task():
                del self._workers[model]

    async def _attempt(self, action: StoredAction) -> None:
        assert self._deliverer is not None
        attempts = action.attempts + 1
        try:
            outcome = await self._deliverer.deliver(action)
        except Exception as exc:
            logger.exception("delivering action %d (%s) raised", action.id, action.action)
            outcome = Outcome(RETRY, f"delivery raised {type(exc).__name__}: {exc}")
        now = self._clock()
        result = outcome.result
        error = outcome.error or "unknown error"
        try:
            if result == DELIVERED:
                await self._in_store(self._store.mark_delivered, action.id, now)
            elif result == RETRY and attempts < max_attempts(action.target):
                delay = retry_delay(action.target, attempts, outcome.retry_after_s)
                await self._in_store(
                    self._store.mark_retry, action.id, attempts, now + delay, error
                )
                logger.warning(
                    "action %d (%s of model %s), attempt %d: %s; next attempt in %.3g s",
                    action.id, action.action, action.model, attempts, error, delay,
                )  # fmt: skip
            else:
                if result == RETRY:
                    result = FAILED
                    error = f"gave up after {attempts} attempts: {error}"
                await self._in_store(self._store.mark_failed, action.id, attempts, error)
                logger.error(
                    "action %d (%s of model %s) failed: %s",
                    action.id, action.action, action.model, error,
                )  # fmt: skip
        except Exception:
            # Not recorded: the action stays as it was and is attempted again (at least once).
            logger.exception("could not record the outcome of action %d", action.id)
            await asyncio.sleep(self._poll_s)
            return
        if self._on_outcome is not None:
            try:
                self._on_outcome(action.model, action.kind, result)
            except Exception:
                logger.exception("the dispatcher's on_outcome callback failed")

    async def _in_store(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._store_threads, lambda: function(*args, **kwargs))


async def _sleep(wake: asyncio.Event, seconds: float) -> None:
    """Sleep up to ``seconds``, or less if woken."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), max(0.0, seconds))


__all__ = ["Dispatcher", "OutcomeCallback"]
