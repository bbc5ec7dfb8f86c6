"""Small cascades for tests: two linear classifiers over the same four features and labels
(`small`, `big`, answering differently), a failing one, and cascade folders over them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from inferd.repository import ModelRepository
from tests.support import onnx_models

LABELS = ["setosa", "versicolor", "virginica"]

FAILING_MODEL = textwrap.dedent(
    """
    from inferd.testing import FakeBackend
    from inferd.spec import TensorSpec


    def Model():
        return FakeBackend(
            [TensorSpec(name="x", datatype="FP32", shape=[-1, 4])],
            [TensorSpec(name="logits", datatype="FP32", shape=[-1, 3])],
            fail=RuntimeError("kaboom: the weights are gone"),
        )
    """
)


def write_yaml(folder: Path, spec: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")


def classifier(root: Path, name: str, seed: int, labels: list[str] = LABELS) -> Path:
    onnx_models.affine(root / name / "1" / "model.onnx", seed=seed)
    write_yaml(
        root / name,
        {
            "task": "classification",
            "labels": labels,
            "postprocess": [{"type": "classify", "top_k": 2}],
        },
    )
    return root / name


def failing(root: Path, name: str = "failing") -> Path:
    folder = root / name
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(FAILING_MODEL, encoding="utf-8")
    write_yaml(
        folder,
        {
            "task": "classification",
            "backend": "python",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [4]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [3]}],
            "labels": LABELS,
            "postprocess": [{"type": "classify", "output": "logits", "top_k": 2}],
        },
    )
    return folder


def cascade(root: Path, name: str, first: str, then: str, when: str, **more: Any) -> Path:
    write_yaml(root / name, {"cascade": {"first": first, "then": then, "when": when}, **more})
    return root / name


def repository(root: Path) -> Path:
    """small and big, and `cascade` over them sending on below confidence 0.7."""
    classifier(root, "small", seed=3)
    classifier(root, "big", seed=7)
    cascade(root, "cascade", "small", "big", "confidence < 0.7")
    return root


def with_eval(root: Path) -> Path:
    """The test cascade with eval data labelled by `big` on some items and `small` on others,
    so sending items on helps on some and hurts on others."""
    repository(root)
    loaded = ModelRepository(root)
    loaded.load()
    instances = np.random.default_rng(1).normal(size=(40, 4)).round(3).tolist()
    small, big = (
        loaded.entry(n).latest.predictive.predict_instances(instances)  # type: ignore[union-attr]
        for n in ("small", "big")
    )
    lines = [
        json.dumps({"instance": x, "target": (b if i % 3 else s).fields["label"]})  # type: ignore[union-attr]
        for i, (x, s, b) in enumerate(zip(instances, small, big, strict=True))
    ]
    (root / "cascade" / "eval.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cascade(
        root,
        "cascade",
        "small",
        "big",
        "confidence < 0.7",
        eval={"data": "eval.jsonl", "metric": "accuracy"},
    )
    return root
