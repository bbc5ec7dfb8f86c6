"""Logged rows made by hand, and the loan classifier's spec they are read against, for the
monitor's tests."""

from __future__ import annotations

from typing import Any

from inferd.spec import ModelSpec, parse_spec
from inferd.store import LoggedRow

LABELS = ["denied", "approved"]


def loan_spec(**sections: Any) -> ModelSpec:
    """A classifier of applicants (`x` and their `group`, both logged) with fairness over
    `group`; `sections` replace or add model.yaml sections."""
    return parse_spec(
        {
            "name": "loans",
            "task": "classification",
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1]},
                {"name": "group", "datatype": "BYTES", "shape": [1]},
            ],
            "postprocess": [{"type": "classify", "output": "y"}],
            "labels": LABELS,
            "prediction_log": {"inputs": "all"},
            "fairness": {"attributes": ["group"], "min_group_size": 30},
            **sections,
        }
    )


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
