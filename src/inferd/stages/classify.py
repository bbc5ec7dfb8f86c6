"""Classification postprocessing: scores → label, score and the top-k with label names."""

from __future__ import annotations

from typing import Any

import numpy as np

from inferd.errors import ModelError
from inferd.spec import ClassifyStage, TensorSpec
from inferd.stages import Postprocess, Prediction


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max()
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(), dtype=np.float64)


def _looks_like_probabilities(scores: np.ndarray) -> bool:
    return bool(scores.min() >= 0.0 and scores.max() <= 1.0 and abs(scores.sum() - 1.0) < 1e-3)


def build(stage: ClassifyStage, output_name: str, labels: list[str] | None) -> Postprocess:
    """A postprocess function reading class scores from model output `output_name`."""

    def run(outputs: dict[str, np.ndarray], _context: dict[str, Any]) -> Prediction:
        scores = np.asarray(outputs[output_name], dtype=np.float64).reshape(-1)
        if labels is not None and scores.size != len(labels):
            raise ModelError(
                f"model output {output_name!r} has {scores.size} scores but {len(labels)} "
                "labels are configured; fix the labels file or the model"
            )
        if stage.softmax is True or (
            stage.softmax == "auto" and not _looks_like_probabilities(scores)
        ):
            probabilities = softmax(scores)
        else:
            probabilities = scores
        k = min(stage.top_k, probabilities.size)
        order = np.argsort(-probabilities, kind="stable")[:k]
        names = [labels[i] if labels is not None else str(i) for i in order]
        top = [
            {"label": name, "score": float(probabilities[i])}
            for name, i in zip(names, order, strict=True)
        ]
        return Prediction(
            fields={"label": names[0], "score": top[0]["score"], "top_k": top},
            tensors={
                "label": np.array([names[0].encode()], dtype=np.object_),
                "score": np.array([top[0]["score"]], dtype=np.float32),
                "probabilities": probabilities.astype(np.float32),
            },
        )

    classes = len(labels) if labels is not None else -1
    return Postprocess(
        run=run,
        outputs=[
            TensorSpec(name="label", datatype="BYTES", shape=[1]),
            TensorSpec(name="score", datatype="FP32", shape=[1]),
            TensorSpec(name="probabilities", datatype="FP32", shape=[classes]),
        ],
    )
