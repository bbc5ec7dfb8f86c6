"""Regression postprocessing: raw outputs → values in the target's own units, named."""

from __future__ import annotations

from typing import Any

import numpy as np

from inferd.errors import ModelError
from inferd.spec import RegressStage, TensorSpec
from inferd.stages import Postprocess, Prediction


def build(stage: RegressStage, output_name: str) -> Postprocess:
    """A postprocess function undoing target scaling on model output `output_name`."""
    mean = np.asarray(stage.mean if stage.mean is not None else [0.0], dtype=np.float64)
    std = np.asarray(stage.std if stage.std is not None else [1.0], dtype=np.float64)
    names = stage.names

    def run(outputs: dict[str, np.ndarray], _context: dict[str, Any]) -> Prediction:
        raw = np.asarray(outputs[output_name], dtype=np.float64).reshape(-1)
        if mean.size not in (1, raw.size) or std.size not in (1, raw.size):
            raise ModelError(
                f"model output {output_name!r} has {raw.size} values but the regress stage "
                f"scales {max(mean.size, std.size)}; fix mean/std in model.yaml"
            )
        values = raw * std + mean
        if names is None:
            if values.size == 1:
                return Prediction(
                    fields={"value": float(values[0])},
                    tensors={"value": values.astype(np.float32)},
                )
            return Prediction(
                fields={"values": [float(v) for v in values]},
                tensors={"value": values.astype(np.float32)},
            )
        if len(names) != values.size:
            raise ModelError(
                f"model output {output_name!r} has {values.size} values but {len(names)} "
                "names are configured; fix `names` in model.yaml"
            )
        return Prediction(
            fields={n: float(v) for n, v in zip(names, values, strict=True)},
            tensors={
                n: np.array([v], dtype=np.float32) for n, v in zip(names, values, strict=True)
            },
        )

    if names is None:
        specs = [TensorSpec(name="value", datatype="FP32", shape=[-1])]
    else:
        specs = [TensorSpec(name=n, datatype="FP32", shape=[1]) for n in names]
    return Postprocess(run=run, outputs=specs)
