"""One model's four costs over a window, from its prediction log: latency per stage (and its
objective), compute cost and energy per 1,000 predictions, the task metric live and over
time, fairness by group and input drift; per version. The same dict is the JSON of
`GET /v1/models/{name}/report`, the data of `inferd report`'s HTML and what alerts read.

Built from the log alone, so it works the same inside the server and from the command line
on a store (or a copy of one) long after the server stopped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inferd.monitor import accuracy, drift, fairness
from inferd.monitor.profile import Profile, load_profile
from inferd.spec import ModelSpec
from inferd.store import LoggedRow, Store

STAGES = ("queue", "preprocess", "model", "postprocess")


def _percentiles(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(np.mean(values))}


def latency(rows: Sequence[LoggedRow]) -> dict[str, Any]:
    """Percentiles of each stage's milliseconds and of the whole request's."""
    figures: dict[str, Any] = {}
    for stage in STAGES:
        figures[stage] = _percentiles(
            [r.stage_ms[stage] for r in rows if r.stage_ms and stage in r.stage_ms]
        )
    figures["total"] = _percentiles([r.latency_ms for r in rows])
    return figures


def slo(spec: ModelSpec, rows: Sequence[LoggedRow]) -> dict[str, Any] | None:
    """The share of logged predictions answered within the objective."""
    if spec.slo is None:
        return None
    met = sum(r.latency_ms <= spec.slo.p99_ms for r in rows)
    return {
        "p99_ms": spec.slo.p99_ms,
        "attainment": met / len(rows) if rows else None,
        "met": met,
        "total": len(rows),
    }


def cost(rows: Sequence[LoggedRow], currency: str | None) -> dict[str, Any]:
    """Money per 1,000 predictions and CPU/GPU milliseconds per prediction."""
    cpu = [r.cpu_ms for r in rows if r.cpu_ms is not None]
    gpu = [r.gpu_ms for r in rows if r.gpu_ms is not None]
    priced = [r.cost for r in rows if r.cost is not None]
    return {
        "currency": currency,
        "per_1000": 1000 * float(np.mean(priced)) if priced else None,
        "cpu_ms_per_prediction": float(np.mean(cpu)) if cpu else None,
        "gpu_ms_per_prediction": float(np.mean(gpu)) if gpu else None,
        "accounted": len(cpu),
    }


def energy(rows: Sequence[LoggedRow], gco2_per_kwh: float | None) -> dict[str, Any]:
    """Joules per 1,000 predictions, with the method(s) they were found by."""
    measured = [r for r in rows if r.energy_j is not None]
    methods = sorted({r.energy_method for r in measured if r.energy_method})
    joules = 1000 * float(np.mean([r.energy_j for r in measured])) if measured else None
    return {
        "method": "+".join(methods) if methods else None,
        "joules_per_1000": joules,
        "gco2e_per_1000": joules * gco2_per_kwh / 3.6e6
        if joules is not None and gco2_per_kwh is not None
        else None,
    }


def build_report(
    spec: ModelSpec,
    rows: Sequence[LoggedRow],
    *,
    since: float,
    until: float,
    labels: Sequence[str] | None = None,
    profiles: Mapping[str, Profile | None] | None = None,
    currency: str | None = None,
    gco2_per_kwh: float | None = None,
    notes: Sequence[str] = (),
    generated_at: float | None = None,
) -> dict[str, Any]:
    """The report of `rows` (the model's logged predictions made in [since, until))."""
    monitoring = spec.monitoring
    by_version: dict[str, list[LoggedRow]] = {}
    for row in rows:
        by_version.setdefault(row.version, []).append(row)
    versions: dict[str, Any] = {}
    for version, logged in sorted(by_version.items(), key=lambda item: _version_key(item[0])):
        live = accuracy.measure(spec, logged, monitoring.min_labels)
        # Over the span the predictions cover, so a young log is not one point in a week.
        first = min(r.created_at for r in logged)
        last = max(r.created_at for r in logged)
        live["over_time"] = accuracy.over_time(
            spec,
            logged,
            max(since, first),
            min(until, last + 1e-6 * max(1.0, last - first)),
            monitoring.buckets,
            monitoring.min_labels,
        )
        versions[version] = {
            "predictions": len(logged),
            "labelled": len(accuracy.labelled(logged)),
            "latency_ms": latency(logged),
            "slo": slo(spec, logged),
            "cost": cost(logged, currency),
            "energy": energy(logged, gco2_per_kwh),
            "accuracy": live,
            "fairness": fairness.measure(spec, logged, labels),
            "drift": drift.measure((profiles or {}).get(version), logged, monitoring.bins),
        }
    report_notes = list(notes)
    if not rows:
        report_notes.append(
            f"no logged predictions of {spec.name!r} in the window"
            + ("" if spec.prediction_log else " (its model.yaml has no prediction_log)")
        )
    return {
        "model": spec.name,
        "task": spec.task,
        "generated_at": generated_at if generated_at is not None else until,
        "window": {"since": since, "until": until, "seconds": until - since},
        "versions": versions,
        "notes": report_notes,
    }


def report_from_store(
    store: Store,
    spec: ModelSpec,
    model_dir: Path,
    *,
    labels: Sequence[str] | None = None,
    window_s: float | None = None,
    now: float | None = None,
    currency: str | None = None,
    gco2_per_kwh: float | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The report of a model's logged predictions in the last `window_s` seconds (default
    its `monitoring.window_s`), with each version's reference profile from its folder."""
    until = time.time() if now is None else now
    since = until - (window_s if window_s is not None else spec.monitoring.window_s)
    rows = store.logged(spec.name, since=since, until=until)
    versions = {row.version for row in rows}
    profiles = {v: load_profile(model_dir / v) for v in versions if v.isdigit()}
    return build_report(
        spec,
        rows,
        since=since,
        until=until,
        labels=labels,
        profiles=profiles,
        currency=currency,
        gco2_per_kwh=gco2_per_kwh,
        notes=notes,
    )


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)


__all__ = ["build_report", "cost", "energy", "latency", "report_from_store", "slo"]
