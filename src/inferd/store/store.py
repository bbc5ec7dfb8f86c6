"""The store: the prediction log, feedback and the actions outbox, on SQLite or PostgreSQL.

Every method is synchronous and thread-safe (one pooled connection per call), so the server
calls it from worker threads. Each write is one transaction: what a method returns from is
committed (see ``opening.py`` for what survives a kill or a power loss).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Row,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from inferd.store import schema
from inferd.store.records import (
    DELIVERED,
    FAILED,
    PENDING,
    ActionRecord,
    FeedbackEntry,
    LoggedPrediction,
    LoggedRow,
    PredictionRecord,
    StoredAction,
)

_LOGGED = [
    "request_id",
    "item",
    "model",
    "version",
    "created_at",
    "latency_ms",
    "inputs",
    "prediction",
    "decisions",
    "stage_ms",
    "cpu_ms",
    "gpu_ms",
    "energy_j",
    "energy_method",
    "cost",
]
"""The prediction-log columns a request writes (the rest: feedback, attached later)."""

_CHUNK = 500  # ids per IN (...) list: well under every backend's parameter limit


def insert_ignore(engine: Engine, table: Table, unique_column: str) -> Insert:
    """INSERT ... ON CONFLICT (unique_column) DO NOTHING, in the engine's dialect."""
    column = table.c[unique_column]
    if engine.dialect.name == "sqlite":
        return sqlite_dialect.insert(table).on_conflict_do_nothing(index_elements=[column])
    return pg_dialect.insert(table).on_conflict_do_nothing(index_elements=[column])


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _stored(row: Row[Any]) -> StoredAction:
    m = row._mapping
    return StoredAction(
        id=int(m["id"]),
        model=m["model"],
        version=m["version"],
        request_id=m["request_id"],
        item=int(m["item"]),
        decision=m["decision"],
        action=m["action"],
        kind=m["kind"],
        target=m["target"],
        event=m["event"],
        idempotency_key=m["idempotency_key"],
        created_at=float(m["created_at"]),
        state=m["state"],
        attempts=int(m["attempts"]),
        next_attempt_at=float(m["next_attempt_at"]),
        last_error=m["last_error"],
        delivered_at=None if m["delivered_at"] is None else float(m["delivered_at"]),
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _logged(row: Row[Any]) -> LoggedRow:
    m = row._mapping
    return LoggedRow(
        request_id=m["request_id"],
        item=int(m["item"]),
        model=m["model"],
        version=m["version"],
        created_at=float(m["created_at"]),
        latency_ms=float(m["latency_ms"]),
        stage_ms=m["stage_ms"],
        inputs=m["inputs"],
        prediction=m["prediction"],
        decisions=m["decisions"],
        feedback=m["feedback"],
        feedback_at=_number(m["feedback_at"]),
        cpu_ms=_number(m["cpu_ms"]),
        gpu_ms=_number(m["gpu_ms"]),
        energy_j=_number(m["energy_j"]),
        energy_method=m["energy_method"],
        cost=_number(m["cost"]),
    )


class Store:
    """The prediction log and the actions outbox. Build it with ``open_store(url)``."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._insert_action = insert_ignore(engine, schema.actions, "idempotency_key")
        compiled = insert(schema.predictions).compile(dialect=engine.dialect, column_keys=_LOGGED)
        self._insert_log = str(compiled)
        """The log's INSERT in the driver's own parameter style (a row per prediction is the
        store's hottest write; its parameters are built by `_log_row`, in this order)."""
        self._log_order = list(compiled.positiontup or _LOGGED)
        self.url = url  # for messages; the password is hidden

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction. On SQLite it takes the write lock up front (waiting up to
        the busy timeout), so a transaction never fails half-way on a lock another took."""
        with self._engine.begin() as conn:
            if self._sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    # -- the request path ------------------------------------------------------------------

    def _log_row(self, p: PredictionRecord) -> tuple[Any, ...] | dict[str, Any]:
        """One prediction's parameters for `_insert_log`; JSON columns as JSON text."""
        values: dict[str, Any] = {
            "request_id": p.request_id,
            "item": p.item,
            "model": p.model,
            "version": p.version,
            "created_at": p.created_at,
            "latency_ms": p.latency_ms,
            "inputs": None if p.inputs is None else schema.dumps(p.inputs),
            "prediction": schema.dumps(p.prediction),
            "decisions": schema.dumps(list(p.decisions)),
            "stage_ms": None if p.stage_ms is None else schema.dumps(p.stage_ms),
            "cpu_ms": p.cpu_ms,
            "gpu_ms": p.gpu_ms,
            "energy_j": p.energy_j,
            "energy_method": p.energy_method,
            "cost": p.cost,
        }
        if self._sqlite:  # qmark: positional
            return tuple(values[name] for name in self._log_order)
        return values

    def save(
        self, predictions: Sequence[PredictionRecord], actions: Sequence[ActionRecord]
    ) -> None:
        """Log predictions and enqueue actions in one transaction. An action whose idempotency
        key is already in the outbox (a re-sent request) is skipped, not enqueued twice."""
        if not predictions and not actions:
            return
        prediction_rows = [self._log_row(p) for p in predictions]
        action_rows: dict[str, dict[str, Any]] = {}
        for a in actions:
            action_rows.setdefault(
                a.idempotency_key,
                {
                    "model": a.model,
                    "version": a.version,
                    "request_id": a.request_id,
                    "item": a.item,
                    "decision": a.decision,
                    "action": a.action,
                    "kind": a.kind,
                    "target": a.target,
                    "event": a.event,
                    "idempotency_key": a.idempotency_key,
                    "state": PENDING,
                    "attempts": 0,
                    "next_attempt_at": a.created_at,
                    "last_error": None,
                    "created_at": a.created_at,
                    "delivered_at": None,
                },
            )
        with self._write() as conn:
            if prediction_rows:  # the driver's executemany: SQLAlchemy's per-row work skipped
                conn.exec_driver_sql(self._insert_log, prediction_rows)
            if action_rows:
                conn.execute(self._insert_action, list(action_rows.values()))

    # -- the monitor's reading ---------------------------------------------------------------

    def logged(
        self,
        model: str,
        *,
        since: float | None = None,
        until: float | None = None,
        limit: int = 200_000,
    ) -> list[LoggedRow]:
        """A model's logged predictions (all versions) with their feedback, oldest first: the
        newest `limit` of those made in [since, until)."""
        table = schema.predictions
        query = select(table).where(table.c.model == model)
        if since is not None:
            query = query.where(table.c.created_at >= since)
        if until is not None:
            query = query.where(table.c.created_at < until)
        query = query.order_by(table.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_logged(row) for row in reversed(rows)]

    # -- feedback --------------------------------------------------------------------------

    def find_predictions(self, request_ids: Sequence[str]) -> dict[str, list[LoggedPrediction]]:
        """The logged items of each request id, in the order they were logged. A request id
        with nothing logged is absent from the result."""
        table = schema.predictions
        found: dict[str, list[LoggedPrediction]] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(request_ids))):
                rows = conn.execute(
                    select(table.c.request_id, table.c.item, table.c.model, table.c.version)
                    .where(table.c.request_id.in_(chunk))
                    .order_by(table.c.id)
                )
                for request_id, item, model, version in rows:
                    found.setdefault(request_id, []).append(
                        LoggedPrediction(request_id, int(item), model, version)
                    )
        return found

    def attach_feedback(self, entries: Sequence[FeedbackEntry], at: float) -> list[tuple[str, int]]:
        """Set the feedback of every logged row with each entry's (request id, item), in one
        transaction; the (request id, item) pairs that matched no row are returned."""
        table = schema.predictions
        unmatched: list[tuple[str, int]] = []
        with self._write() as conn:
            for entry in entries:
                result = conn.execute(
                    update(table)
                    .where(table.c.request_id == entry.request_id, table.c.item == entry.item)
                    .values(feedback=entry.value, feedback_at=at)
                )
                if result.rowcount == 0:
                    unmatched.append((entry.request_id, entry.item))
        return unmatched

    # -- the dispatcher --------------------------------------------------------------------

    def next_pending(self, model: str) -> StoredAction | None:
        """The model's pending action with the lowest id, due or not: delivery is in order."""
        table = schema.actions
        with self._engine.connect() as conn:
            row = conn.execute(
                select(table)
                .where(table.c.model == model, table.c.state == PENDING)
                .order_by(table.c.id)
                .limit(1)
            ).first()
        return None if row is None else _stored(row)

    def pending_models(self) -> list[str]:
        table = schema.actions
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(table.c.model).where(table.c.state == PENDING).distinct()
            ).scalars()
            return sorted(rows)

    def mark_delivered(self, action_id: int, at: float) -> None:
        """Delivered by one more attempt (``attempts`` grows by one)."""
        table = schema.actions
        self._update_pending(
            action_id,
            state=DELIVERED,
            attempts=table.c.attempts + 1,
            delivered_at=at,
        )

    def mark_retry(self, action_id: int, attempts: int, next_attempt_at: float, error: str) -> None:
        self._update_pending(
            action_id, attempts=attempts, next_attempt_at=next_attempt_at, last_error=error
        )

    def mark_failed(self, action_id: int, attempts: int, error: str) -> None:
        self._update_pending(action_id, state=FAILED, attempts=attempts, last_error=error)

    def _update_pending(self, action_id: int, **values: Any) -> None:
        table = schema.actions
        with self._write() as conn:
            conn.execute(
                update(table)
                .where(table.c.id == action_id, table.c.state == PENDING)
                .values(**values)
            )

    # -- operators -------------------------------------------------------------------------

    def list_actions(
        self, state: str | None = None, model: str | None = None, limit: int = 100
    ) -> list[StoredAction]:
        """The newest actions first, optionally of one state and one model."""
        table = schema.actions
        query = select(table).order_by(table.c.id.desc()).limit(limit)
        if state is not None:
            query = query.where(table.c.state == state)
        if model is not None:
            query = query.where(table.c.model == model)
        with self._engine.connect() as conn:
            return [_stored(row) for row in conn.execute(query)]

    def action_events(self, keys: Sequence[str]) -> dict[str, Any]:
        """The events of the outbox's actions with these idempotency keys (those it has)."""
        table = schema.actions
        found: dict[str, Any] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(keys), 500):
                query = select(table.c.idempotency_key, table.c.event).where(
                    table.c.idempotency_key.in_(keys[start : start + 500])
                )
                found.update({key: event for key, event in conn.execute(query)})
        return found

    def action_counts(self) -> dict[tuple[str, str], int]:
        """(model, state) → how many actions."""
        table = schema.actions
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(table.c.model, table.c.state, func.count()).group_by(
                    table.c.model, table.c.state
                )
            )
            return {(model, state): int(count) for model, state, count in rows}

    def retry_failed(self, model: str | None = None, ids: Sequence[int] | None = None) -> int:
        """Put failed actions (of one model, or with these ids) back to pending, due now, with
        their attempts reset; how many were. A running dispatcher sees them within its poll."""
        table = schema.actions
        now = time.time()
        base = (
            update(table)
            .where(table.c.state == FAILED)
            .values(state=PENDING, attempts=0, next_attempt_at=now)
        )
        if model is not None:
            base = base.where(table.c.model == model)
        count = 0
        with self._write() as conn:
            if ids is None:
                return int(conn.execute(base).rowcount)
            for chunk in _chunks(list(dict.fromkeys(ids))):
                count += int(conn.execute(base.where(table.c.id.in_(chunk))).rowcount)
        return count

    def prune(self, before: float) -> tuple[int, int]:
        """Delete the predictions logged before ``before`` and the delivered actions created
        before it (pending and failed ones stay); (predictions, actions) deleted."""
        predictions, actions = schema.predictions, schema.actions
        with self._write() as conn:
            logged = conn.execute(delete(predictions).where(predictions.c.created_at < before))
            delivered = conn.execute(
                delete(actions).where(actions.c.state == DELIVERED, actions.c.created_at < before)
            )
            return int(logged.rowcount), int(delivered.rowcount)

    def close(self) -> None:
        self._engine.dispose()


__all__ = ["Store", "insert_ignore"]
