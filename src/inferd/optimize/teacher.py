"""A teacher's logits: what another model of the repository answers for a student's training
instances, run through the teacher's own inferd pipeline (its preprocess and model stages),
so the student learns what the served teacher says.

Teachers are slow (that is why they are distilled), so the logits are cached on disk, keyed by
the teacher's files and the instances: a second distillation run with other settings reuses
them. The cache lives outside the model repository (`INFERD_CACHE`, else ~/.cache/inferd).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inferd.errors import SpecError
from inferd.repository import ModelEntry, ModelVersion
from inferd.spec import ClassifyStage

CHUNK = 32


def default_cache() -> Path:
    root = os.environ.get("INFERD_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "inferd"
    return base / "teacher-logits"


def logits_output(model: ModelVersion) -> str:
    """The output its classify stage reads (else its only output)."""
    for stage in model.spec.postprocess:
        if isinstance(stage, ClassifyStage) and stage.output is not None:
            return stage.output
    outputs = model.predictive.backend.outputs
    if len(outputs) != 1:
        names = ", ".join(t.name for t in outputs)
        raise SpecError(
            f"teacher {model.name!r} has outputs {names}; name its scores in model.yaml "
            "(postprocess: classify output:)"
        )
    return outputs[0].name


def fingerprint(entry: ModelEntry, model: ModelVersion, instances: Sequence[Any]) -> str:
    """A hash of everything the logits depend on: the teacher's files and the instances."""
    digest = hashlib.sha256()
    folders = [entry.path, entry.path / str(model.version)]
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            digest.update(path.name.encode())
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    digest.update(json.dumps(list(instances), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def as_logits(scores: np.ndarray) -> np.ndarray:
    """Scores as logits: probabilities (rows of non-negatives summing to 1) become their logs."""
    scores = scores.astype(np.float32)
    if scores.min() >= 0 and np.allclose(scores.sum(1), 1.0, atol=1e-3):
        logs: np.ndarray = np.log(np.clip(scores, 1e-12, None))
        return logs
    return scores


def teacher_logits(
    entry: ModelEntry,
    model: ModelVersion,
    instances: Sequence[Any],
    *,
    cache: Path | None = None,
    advance: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, bool]:
    """[N, classes] logits of `model` (a version of `entry`) for the instances, and whether
    they came from the cache."""
    folder = default_cache() if cache is None else cache
    path = folder / f"{entry.name}-v{model.version}-{fingerprint(entry, model, instances)}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        if cached.shape[0] == len(instances):
            if advance is not None:
                advance(len(instances))
            return cached, True
    pipeline = model.predictive
    output = logits_output(model)
    parts = []
    for start in range(0, len(instances), CHUNK):
        chunk = instances[start : start + CHUNK]
        for feed in pipeline.feeds(chunk):
            parts.append(pipeline.backend.run(feed)[output])
        if advance is not None:
            advance(len(chunk))
    logits = as_logits(np.concatenate(parts))
    if logits.ndim != 2 or logits.shape[0] != len(instances):
        raise SpecError(
            f"teacher {model.name!r}: output {output!r} has shape {list(logits.shape)}; "
            "distilling needs one row of class scores per instance"
        )
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as f:
            np.save(f, logits)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return logits, False
