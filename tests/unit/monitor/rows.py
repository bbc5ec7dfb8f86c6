"""Logged rows made by hand, for the monitor's tests."""

from __future__ import annotations

from typing import Any

from inferd.store import LoggedRow


def row(
    prediction: dict[str, Any],
    feedback: Any = None,
    inputs: dict[str, Any] | None = None,
    *,
    version: str = "1",
    created_at: float = 100.0,
    latency_ms: float = 2.0,
    **kw: Any,
) -> LoggedRow:
    fields: dict[str, Any] = {
        "stage_ms": None,
        "cpu_ms": None,
        "gpu_ms": None,
        "energy_j": None,
        "energy_method": None,
        "cost": None,
    }
    fields.update(kw)
    return LoggedRow(
        request_id=f"r{id(prediction)}",
        item=0,
        model="m",
        version=version,
        created_at=created_at,
        latency_ms=latency_ms,
        inputs=inputs,
        prediction=prediction,
        decisions=[],
        feedback=feedback,
        feedback_at=None if feedback is None else created_at + 1,
        **fields,
    )
