"""The series stage: the latest window of a client's history, standardized."""

from __future__ import annotations

import numpy as np
import pytest

from inferd.errors import BadRequestError
from inferd.spec import SeriesStage
from inferd.stages import series
from tests.support.stages import values_after


def _stage(**options: object) -> SeriesStage:
    return SeriesStage.model_validate({"type": "series", "window": 3, **options})


def test_takes_the_latest_window_and_scales_it() -> None:
    run = values_after(series.build(_stage(mean=10.0, std=2.0), "series", "window"))
    item = run({"series": np.array([1.0, 2.0, 12.0, 14.0, 16.0]), "other": 5})
    np.testing.assert_allclose(item["window"], [1.0, 2.0, 3.0])
    assert item["window"].dtype == np.float32
    assert "series" not in item and item["other"] == 5


def test_w1_layout_adds_a_feature_axis() -> None:
    run = values_after(series.build(_stage(layout="W1"), "series", "window"))
    assert run({"series": np.arange(4.0)})["window"].shape == (3, 1)


def test_too_short_a_series_says_how_many_values_are_needed() -> None:
    run = values_after(series.build(_stage(window=12), "series", "window"))
    with pytest.raises(BadRequestError) as caught:
        run({"series": np.arange(5.0)})
    assert caught.value.message == (
        "input 'series' has 5 values but this model reads the last 12; send at least 12"
    )


def test_non_finite_values_in_the_window_are_refused() -> None:
    run = values_after(series.build(_stage(), "series", "window"))
    with pytest.raises(BadRequestError, match="NaN or infinite"):
        run({"series": np.array([1.0, np.nan, 2.0, 3.0])})
    # A gap older than the window does not matter.
    np.testing.assert_allclose(
        run({"series": np.array([np.nan, 1.0, 2.0, 3.0])})["window"], [1.0, 2.0, 3.0]
    )


def test_a_table_is_not_a_series() -> None:
    run = values_after(series.build(_stage(), "series", "window"))
    with pytest.raises(BadRequestError, match="flat list"):
        run({"series": np.ones((3, 2))})


def test_zero_std_is_refused_in_the_spec() -> None:
    with pytest.raises(ValueError, match="std must not be 0"):
        _stage(std=0.0)
