"""Group commit for the request path: many requests' records, one transaction.

Requests hand their records to one writer thread and wait; the thread takes everything that
queued up meanwhile and commits it with one ``Store.save``, so under load a request pays a
share of a commit instead of a whole one. A request returns only once its records are
committed: the response never goes out as if its actions were saved when they were not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from inferd.errors import ConflictError, ModelNotReadyError
from inferd.store.records import ActionRecord, PredictionRecord
from inferd.store.schema import dumps
from inferd.store.store import Store

logger = logging.getLogger("inferd.store")

LOG_DELAY_S = 0.1
"""How long prediction-log rows may wait to share a commit (`StoreWriter.log`)."""


@dataclass
class _Job:
    predictions: Sequence[PredictionRecord]
    actions: Sequence[ActionRecord]
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[None] | None  # None: nobody waits (a prediction-log write)


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the waiter was cancelled; its records are committed all the same
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _request_of(event: Any) -> str:
    """What tells two requests apart in an action's event: its item's inputs and prediction,
    as JSON (a stored event has been through JSON; a new one not yet)."""
    return dumps([event.get("inputs"), event.get("prediction")])


def _not_saved(exc: BaseException) -> ModelNotReadyError:
    reason = getattr(exc, "orig", None) or exc
    return ModelNotReadyError(
        f"could not record the prediction/actions in the store: {reason}; retry"
    )


class StoreWriter:
    """One thread that commits queued records in groups; ``save`` awaits the commit, ``log``
    does not (``flush`` then waits for everything queued before it).

    ``on_saved`` is called from the writer thread, after a commit that held actions and before
    its waiters resume, with the names of their models (to wake the dispatcher); it must be
    thread-safe and quick.
    """

    def __init__(self, store: Store, on_saved: Callable[[set[str]], None] | None = None) -> None:
        self._store = store
        self._on_saved = on_saved
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="inferd-store-writer", daemon=True
            )
            self._thread.start()

    async def save(
        self, predictions: Sequence[PredictionRecord], actions: Sequence[ActionRecord]
    ) -> None:
        """Return once these records are committed; ModelNotReadyError (503) if they could not
        be."""
        if not predictions and not actions:
            return
        await self._wait(list(predictions), list(actions))

    def log(self, predictions: Sequence[PredictionRecord]) -> None:
        """Queue prediction-log rows without waiting for their commit (a failure is logged).
        What the request path uses when no action rides on the rows: an answer need not wait
        for its log line (a kill loses at most the last few milliseconds of log rows)."""
        with self._cond:
            if self._thread is None or self._closing:
                logger.warning(
                    "the store writer is not running: %d log rows dropped", len(predictions)
                )
                return
            self._jobs.append(_Job(list(predictions), [], None, None))
            self._cond.notify()

    async def flush(self) -> None:
        """Return once everything queued before this call is committed (or failed)."""
        await self._wait([], [])

    async def _wait(self, predictions: list[PredictionRecord], actions: list[ActionRecord]) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        job = _Job(predictions, actions, loop, future)
        with self._cond:
            if self._thread is None:
                raise RuntimeError("StoreWriter.start() was not called")
            if self._closing:
                raise ModelNotReadyError(
                    "could not record the prediction/actions in the store: the server is "
                    "shutting down; retry"
                )
            self._jobs.append(job)
            self._cond.notify()
        await future

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if not self._jobs:  # closing and drained
                    return
                self._gather_log_rows()
                jobs, self._jobs = self._jobs, []
            self._commit(jobs)

    def _gather_log_rows(self) -> None:
        """While only log rows wait (nobody awaits them), let more gather for LOG_DELAY_S: a
        commit per request costs ~0.2 ms of CPU and GIL a server under load cannot spare. A
        waiter (`save`, `flush`) or closing ends the wait at once. Called with the lock held."""
        deadline = time.monotonic() + LOG_DELAY_S
        while not self._closing and all(job.future is None for job in self._jobs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _commit(self, jobs: list[_Job]) -> None:
        errors: dict[int, BaseException] = {}
        try:
            errors = self._reused_request_ids(jobs)
            saved = [job for job in jobs if id(job) not in errors]
            self._store.save(
                [p for job in saved for p in job.predictions],
                [a for job in saved for a in job.actions],
            )
        except Exception as exc:
            if len(jobs) == 1 or isinstance(exc, OperationalError | InterfaceError):
                # The database is down or locked: each job alone would fail the same way.
                logger.error("could not commit %d requests' records: %s", len(jobs), exc)
                errors = {id(job): _not_saved(exc) for job in jobs}
            else:
                # Something in one request's records (a value JSON cannot hold, say) must not
                # fail its group-mates: commit each on its own.
                errors = self._commit_one_by_one(jobs)
        # Notify first, so that once a save returns its actions are already on their way.
        models = {a.model for job in jobs if id(job) not in errors for a in job.actions}
        if models and self._on_saved is not None:
            try:
                self._on_saved(models)
            except Exception:
                logger.exception("the store writer's on_saved callback failed")
        for job in jobs:
            error = errors.get(id(job))
            if job.future is None or job.loop is None:
                continue  # log rows nobody waits for (a failure was logged above)
            # A closed event loop raises RuntimeError: nobody waits there any more.
            with contextlib.suppress(RuntimeError):
                job.loop.call_soon_threadsafe(_resolve, job.future, error)

    def _reused_request_ids(self, jobs: list[_Job]) -> dict[int, BaseException]:
        """Refuse (409) a request whose actions clash with recorded ones of another request
        under the same request id: the outbox keeps one action per key, so they would be
        dropped while the answer said they were taken. The same request sent again (the same
        prediction of the same inputs) is a retry, and its actions are not repeated."""
        deciding = [job for job in jobs if job.actions]
        if not deciding:
            return {}
        keys = [a.idempotency_key for job in deciding for a in job.actions]
        recorded = {
            key: _request_of(event) for key, event in self._store.action_events(keys).items()
        }
        errors: dict[int, BaseException] = {}
        for job in deciding:
            clash = next(
                (
                    a
                    for a in job.actions
                    if recorded.get(a.idempotency_key, _request_of(a.event)) != _request_of(a.event)
                ),
                None,
            )
            if clash is None:
                recorded.update({a.idempotency_key: _request_of(a.event) for a in job.actions})
                continue
            errors[id(job)] = ConflictError(
                f"request id {clash.request_id!r} was already used for another request of model "
                f"{clash.model!r}, whose actions are recorded; send each new request with its "
                "own X-Request-Id (the same request again, with the same id, is a retry and its "
                "actions are not repeated); nothing of this request was recorded"
            )
        return errors

    def _commit_one_by_one(self, jobs: list[_Job]) -> dict[int, BaseException]:
        errors: dict[int, BaseException] = {}
        for job in jobs:
            try:
                self._store.save(job.predictions, job.actions)
            except Exception as exc:
                logger.error("could not commit a request's records: %s", exc)
                errors[id(job)] = _not_saved(exc)
        return errors


__all__ = ["StoreWriter"]
