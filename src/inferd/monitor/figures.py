"""A report's version entry as the flat, named figures alerts read (`spec.monitoring.FIGURES`)
and the quality gauges show: a figure that is not known yet is None."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _largest(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def figures(version: dict[str, Any]) -> dict[str, float | None]:
    """The named figures of one version of a report (`report.build_report`)."""
    live = version["accuracy"]
    found: dict[str, float | None] = {
        name: None for name in ("accuracy", "f1", "mae", "mase", "map")
    }
    if live["status"] == "ok" and live["metric"] is not None:
        found[live["metric"]] = live["value"]
        found["f1"] = live.get("f1")
    found["labels"] = float(live["n"])
    found["predictions"] = float(version["predictions"])
    slo = version.get("slo")
    found["slo_attainment"] = slo["attainment"] if slo else None
    total = version["latency_ms"].get("total")
    found["latency_p99_ms"] = total["p99"] if total else None
    found["cost_per_1000"] = version["cost"]["per_1000"]
    found["energy_j_per_1000"] = version["energy"]["joules_per_1000"]
    attributes = (version.get("fairness") or {}).get("attributes", {}).values()
    for measure in ("demographic_parity_difference", "equalized_odds_difference"):
        found[measure] = _largest((a.get(measure) or {}).get("value") for a in attributes)
    features = version["drift"]["features"].values()
    found["drift_psi_max"] = _largest(f.get("psi") for f in features)
    found["drift_ks_max"] = _largest(f.get("ks") for f in features)
    return found


__all__ = ["figures"]
