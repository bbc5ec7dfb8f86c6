"""The store's tables (SQLAlchemy Core) and the schema version a later change migrates from.

Times are UTC epoch seconds in double columns, so SQLite and PostgreSQL hold the same values.
JSON columns are plain JSON (not JSONB), so an event is delivered with its keys in the order it
was written; SQL NULL (``none_as_null``) marks "no inputs logged" and "no feedback yet".
"""

from __future__ import annotations

import decimal
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 2

# An autoincrement key: BIGINT identity on PostgreSQL, INTEGER PRIMARY KEY (the rowid) on SQLite.
_Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

schema_version = Table(
    "inferd_schema_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1: a single row
    Column("version", Integer, nullable=False),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("request_id", String(256), nullable=False),
    Column("item", Integer, nullable=False),
    Column("model", String(256), nullable=False),
    Column("version", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("latency_ms", Double, nullable=False),
    Column("inputs", JSON(none_as_null=True), nullable=True),
    Column("prediction", JSON(none_as_null=True), nullable=False),
    Column("decisions", JSON(none_as_null=True), nullable=False),
    Column("feedback", JSON(none_as_null=True), nullable=True),
    Column("feedback_at", Double, nullable=True),
    # Version 2: what each prediction cost (see monitor/usage.py), NULL on older rows.
    Column("stage_ms", JSON(none_as_null=True), nullable=True),
    Column("cpu_ms", Double, nullable=True),
    Column("gpu_ms", Double, nullable=True),
    Column("energy_j", Double, nullable=True),
    Column("energy_method", String(16), nullable=True),
    Column("cost", Double, nullable=True),
    Index("ix_predictions_request_item", "request_id", "item"),
    Index("ix_predictions_created_at", "created_at"),
    sqlite_autoincrement=True,  # ids are never reused after a prune
)

actions = Table(
    "actions",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),  # the delivery order
    Column("model", String(256), nullable=False),
    Column("version", String(64), nullable=False),
    Column("request_id", String(256), nullable=False),
    Column("item", Integer, nullable=False),
    Column("decision", String(256), nullable=False),
    Column("action", String(256), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("target", JSON(none_as_null=True), nullable=False),
    Column("event", JSON(none_as_null=True), nullable=False),
    Column("idempotency_key", String(512), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Double, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", Double, nullable=False),
    Column("delivered_at", Double, nullable=True),
    Index("ix_actions_model_state_id", "model", "state", "id"),  # next_pending
    Index("ix_actions_state_created_at", "state", "created_at"),  # pending_models, prune
    sqlite_autoincrement=True,
)


ADDED_IN = {2: ("stage_ms", "cpu_ms", "gpu_ms", "energy_j", "energy_method", "cost")}
"""The prediction-log columns each schema version added: what upgrading a store adds."""


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """JSON for the store: numpy arrays and scalars as numbers, NaN and infinities as null."""
    return orjson.dumps(
        value,
        default=_json_default,
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
    ).decode()


def loads(text: str | bytes | float) -> Any:
    # SQLite gives a JSON column numeric affinity: a bare number (a regressor's truth) comes
    # back as a number, already decoded.
    if isinstance(text, int | float):
        return text
    return orjson.loads(text)


__all__ = ["ADDED_IN", "SCHEMA_VERSION", "actions", "dumps", "loads", "metadata", "predictions"]
