"""Where predictions, feedback and the actions outbox are kept: SQLite or PostgreSQL.

    open_store(url) -> Store      the tables; synchronous, thread-safe, one transaction a call
    StoreWriter(store, on_saved)  group commit for the request path (``await writer.save``)

Records go in and out as the frozen dataclasses of ``records.py``; no SQLAlchemy object leaves
this package.
"""

from inferd.store.opening import SUPPORTED_URLS, default_store_url, open_store
from inferd.store.records import (
    ACTION_STATES,
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
from inferd.store.store import Store
from inferd.store.writer import StoreWriter

__all__ = [
    "ACTION_STATES",
    "DELIVERED",
    "FAILED",
    "PENDING",
    "SUPPORTED_URLS",
    "ActionRecord",
    "FeedbackEntry",
    "LoggedPrediction",
    "LoggedRow",
    "PredictionRecord",
    "Store",
    "StoreWriter",
    "StoredAction",
    "default_store_url",
    "open_store",
]
