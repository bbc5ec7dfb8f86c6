"""Forecasting postprocessing: raw outputs → the horizon in the series' own units."""

from __future__ import annotations

from typing import Any

import numpy as np

from inferd.spec import ForecastStage, TensorSpec
from inferd.stages import Postprocess, Prediction


def build(stage: ForecastStage, output_name: str) -> Postprocess:
    """A postprocess function undoing the series scaling on model output `output_name`."""

    def run(outputs: dict[str, np.ndarray], _context: dict[str, Any]) -> Prediction:
        raw = np.asarray(outputs[output_name], dtype=np.float64).reshape(-1)
        values = raw * stage.std + stage.mean
        if stage.min_value is not None or stage.max_value is not None:
            values = np.clip(values, stage.min_value, stage.max_value)
        return Prediction(
            fields={"forecast": [float(v) for v in values]},
            tensors={"forecast": values.astype(np.float32)},
        )

    return Postprocess(run=run, outputs=[TensorSpec(name="forecast", datatype="FP32", shape=[-1])])
