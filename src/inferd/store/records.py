"""The plain records that go into and come out of the store; no SQLAlchemy object leaves it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
ACTION_STATES = (PENDING, DELIVERED, FAILED)


@dataclass(frozen=True)
class PredictionRecord:
    """One predicted item of one request, for the prediction log."""

    request_id: str
    item: int  # index of the instance within the request
    model: str
    version: str
    created_at: float  # UTC epoch seconds
    latency_ms: float
    inputs: dict[str, Any] | None  # None when the model does not log its inputs
    prediction: dict[str, Any]
    decisions: list[str]
    stage_ms: dict[str, float] | None = None  # queue, preprocess, model, postprocess
    cpu_ms: float | None = None  # its share of its batch's CPU time
    gpu_ms: float | None = None
    energy_j: float | None = None
    energy_method: str | None = None  # "rapl" | "nvml" | "estimate"
    cost: float | None = None  # in the server's currency; None without a price


@dataclass(frozen=True)
class LoggedRow:
    """A logged prediction as the monitor reads it back: with its feedback and its costs."""

    request_id: str
    item: int
    model: str
    version: str
    created_at: float
    latency_ms: float
    stage_ms: dict[str, float] | None
    inputs: dict[str, Any] | None
    prediction: dict[str, Any]
    decisions: list[str]
    feedback: Any | None
    feedback_at: float | None
    cpu_ms: float | None
    gpu_ms: float | None
    energy_j: float | None
    energy_method: str | None
    cost: float | None


@dataclass(frozen=True)
class ActionRecord:
    """An action to deliver, as the request path enqueues it in the outbox."""

    model: str
    version: str
    request_id: str
    item: int
    decision: str
    action: str  # the action's name, e.g. "specialist_review.webhook"
    kind: str  # "webhook" | "log" | "python"
    target: dict[str, Any]  # the action's settings when it was enqueued
    event: dict[str, Any]  # the body to deliver
    idempotency_key: str  # unique: a second action with the same key is not enqueued
    created_at: float


@dataclass(frozen=True)
class StoredAction:
    """An action in the outbox, with its delivery state. ``id`` is the delivery order."""

    id: int
    model: str
    version: str
    request_id: str
    item: int
    decision: str
    action: str
    kind: str
    target: dict[str, Any]
    event: dict[str, Any]
    idempotency_key: str
    created_at: float
    state: str  # "pending" | "delivered" | "failed"
    attempts: int
    next_attempt_at: float
    last_error: str | None
    delivered_at: float | None


@dataclass(frozen=True)
class FeedbackEntry:
    """The ground truth for one predicted item, attached to it later by request id."""

    request_id: str
    item: int
    value: Any


@dataclass(frozen=True)
class LoggedPrediction:
    """Which model and version predicted an item: what ``find_predictions`` returns."""

    request_id: str
    item: int
    model: str
    version: str


__all__ = [
    "ACTION_STATES",
    "DELIVERED",
    "FAILED",
    "PENDING",
    "ActionRecord",
    "FeedbackEntry",
    "LoggedPrediction",
    "LoggedRow",
    "PredictionRecord",
    "StoredAction",
]
