"""Small builders of store records for the tests."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Table, create_engine, select

from inferd.store import ActionRecord, PredictionRecord


def prediction(request_id: str, item: int = 0, model: str = "m", **kw: Any) -> PredictionRecord:
    fields: dict[str, Any] = {
        "version": "1",
        "created_at": time.time(),
        "latency_ms": 1.5,
        "inputs": {"x": [1.0, 2.0]},
        "prediction": {"label": "cat", "score": 0.9},
        "decisions": ["review"],
    }
    fields.update(kw)
    return PredictionRecord(request_id=request_id, item=item, model=model, **fields)


def action(key: str, model: str = "m", **kw: Any) -> ActionRecord:
    fields: dict[str, Any] = {
        "version": "1",
        "request_id": f"req-{key}",
        "item": 0,
        "decision": "review",
        "action": "review.webhook",
        "kind": "webhook",
        "target": {"url": "http://127.0.0.1:9/hook", "timeout_s": 5},
        "event": {"key": key, "score": 0.9},
        "created_at": time.time(),
    }
    fields.update(kw)
    return ActionRecord(model=model, idempotency_key=key, **fields)


def table_rows(url: str, table: Table) -> list[dict[str, Any]]:
    """Every row of a store table, read behind the store's back (to check what it wrote)."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(select(table).order_by(table.c.id))]
    finally:
        engine.dispose()
