"""The forecast stage: model outputs back in the series' units, optionally clipped."""

from __future__ import annotations

import numpy as np

from inferd.spec import ForecastStage
from inferd.stages import forecast


def _stage(**options: object) -> ForecastStage:
    return ForecastStage.model_validate({"type": "forecast", **options})


def test_inverse_scaling_gives_the_horizon_in_real_units() -> None:
    post = forecast.build(_stage(mean=100.0, std=50.0), "forecast")
    prediction = post.run({"forecast": np.array([0.0, 1.0, -1.0], dtype=np.float32)}, {})
    assert prediction.fields == {"forecast": [100.0, 150.0, 50.0]}
    np.testing.assert_allclose(prediction.tensors["forecast"], [100.0, 150.0, 50.0])
    assert [t.name for t in post.outputs] == ["forecast"]


def test_clipping_bounds_the_values() -> None:
    post = forecast.build(_stage(mean=0.0, std=10.0, min_value=0.0, max_value=15.0), "y")
    assert post.run({"y": np.array([-1.0, 1.0, 2.0])}, {}).fields == {"forecast": [0.0, 10.0, 15.0]}
