"""The text, series and tabular stages on any value an item can hold: each makes the tensors it
promises (finite, of its datatype and shape) or refuses the item with a 400."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inferd.datatypes import DATATYPES, numpy_dtype
from inferd.errors import BadRequestError
from inferd.spec import SeriesStage, TabularStage, TextStage
from inferd.stages import Item, series, tabular, text
from tests.support.stages import apply
from tests.unit.fuzz.outcome import JSON, examples, outcome

SUPPORT_INTENT = Path(__file__).parents[3] / "model_repository" / "support-intent"


def wire_arrays(elements: st.SearchStrategy[bytes] | None = None) -> st.SearchStrategy[Any]:
    """What stage 1 hands a stage: an array of any datatype and small shape (BYTES as an
    object array of bytes)."""

    def of(datatype: str) -> st.SearchStrategy[Any]:
        dtype = numpy_dtype(datatype)
        shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
        if datatype == "BYTES":
            return hnp.arrays(
                dtype, shapes, elements=st.binary(max_size=12) if elements is None else elements
            )
        return hnp.arrays(dtype, shapes)

    return st.sampled_from(DATATYPES).flatmap(of)


VALUES = wire_arrays() | JSON | st.binary(max_size=20)
"""Anything: what stage 1 makes, and plain Python values besides."""


# --- text -----------------------------------------------------------------------------------------

TEXTS = st.text(max_size=40) | st.text(st.characters(codec="utf-8"), max_size=40)


@st.composite
def text_stages(draw: st.DrawFn) -> TextStage:
    outputs = {"input_ids": "ids"}
    for key in ("attention_mask", "token_type_ids"):
        if draw(st.booleans()):
            outputs[key] = key
    return TextStage(
        type="text",
        tokenizer="tokenizer.json",
        max_length=draw(st.integers(1, 64)),
        outputs=outputs,
        datatype=draw(st.sampled_from(["INT64", "INT32"])),
    )


def check_text(stage: TextStage, value: Any) -> None:
    step, _ = text.build(stage, "text", SUPPORT_INTENT)
    result = outcome(apply, step, {"text": value})
    if isinstance(result, Item):
        lengths = set()
        for name in stage.outputs.values():
            tensor = result.values[name]
            assert tensor.ndim == 1 and tensor.dtype == numpy_dtype(stage.datatype)
            lengths.add(tensor.size)
        [length] = lengths
        assert 1 <= length <= stage.max_length, f"{length} tokens"


@settings(max_examples=examples(200))
@given(text_stages(), TEXTS)
def test_any_text(stage: TextStage, value: str) -> None:
    check_text(stage, value)
    check_text(stage, np.array([value.encode("utf-8", "surrogatepass")], dtype=object))


@settings(max_examples=examples(150))
@given(text_stages(), VALUES | wire_arrays(st.text(max_size=10).map(str.encode)))
def test_any_value_for_text(stage: TextStage, value: Any) -> None:
    check_text(stage, value)


def test_long_texts_are_truncated() -> None:
    stage = TextStage(type="text", max_length=8)
    for value in ("refund " * 20_000, "a" * 200_000, "\u0301" * 50_000):
        check_text(stage, value)


# --- series ---------------------------------------------------------------------------------------


@st.composite
def series_stages(draw: st.DrawFn) -> SeriesStage:
    return SeriesStage(
        type="series",
        window=draw(st.integers(1, 6)),
        mean=draw(st.floats(-10, 10)),
        std=draw(st.sampled_from([1.0, 0.5, 1e-3, 100.0])),
        layout=draw(st.sampled_from(["W", "W1"])),
    )


@settings(max_examples=examples(300))
@given(series_stages(), VALUES | hnp.arrays(np.float64, st.integers(0, 12)))
def test_any_value_for_series(stage: SeriesStage, value: Any) -> None:
    result = outcome(apply, series.build(stage, "series", "window"), {"series": value})
    if isinstance(result, Item):
        window = result.values["window"]
        assert window.dtype == np.float32
        assert window.shape == ((stage.window,) if stage.layout == "W" else (stage.window, 1))
        assert np.isfinite(window).all()


# --- tabular --------------------------------------------------------------------------------------

FEATURES = ["age", "group", "height"]


@st.composite
def tabular_stages(draw: st.DrawFn) -> TabularStage:
    return TabularStage(
        type="tabular",
        features=FEATURES,
        mean=draw(st.none() | st.just([1.0, 0.5, 170.0])),
        std=draw(st.none() | st.just([2.0, 1.0, 1e-3])),
        datatype=draw(st.sampled_from(["FP32", "FP64"])),
        categories=draw(st.sampled_from([{}, {"group": ["A", "B", "ü"]}])),
    )


@settings(max_examples=examples(300))
@given(
    tabular_stages(),
    st.dictionaries(
        st.sampled_from([*FEATURES, "extra"]),
        VALUES | st.sampled_from(["A", "B", "ü", "C"]) | st.floats(),
        max_size=4,
    ),
)
def test_any_values_for_tabular(stage: TabularStage, values: dict[str, Any]) -> None:
    result = outcome(apply, tabular.build(stage, "x"), values)
    if isinstance(result, Item):
        features = result.values["x"]
        assert features.shape == (3,) and features.dtype == numpy_dtype(stage.datatype)
        assert np.isfinite(features).all()


@pytest.mark.parametrize("value", [b"abc", np.array([b"\xff"], dtype=object), "1e999"])
def test_a_text_value_for_a_number_feature(value: Any) -> None:
    stage = TabularStage(type="tabular", features=["age"])
    outcome(apply, tabular.build(stage, "x"), {"age": value})


def _refusal(step: Any, values: dict[str, Any]) -> str:
    with pytest.raises(BadRequestError) as caught:
        apply(step, values)
    return caught.value.message


def test_a_bytes_series_is_refused() -> None:
    """Regression: a BYTES series (stage 1 hands an object array of bytes) raised ValueError
    from numpy (a 500)."""
    step = series.build(SeriesStage(type="series", window=2), "series", "window")
    message = _refusal(step, {"series": np.array([b"1", b"x"], dtype=object)})
    assert message.startswith("input 'series' must be a flat list of numbers, oldest first; got")


def test_series_values_beyond_fp32_once_scaled_are_refused() -> None:
    """Regression: an FP64 series of 1e300 passed the finite check and became inf in the
    float32 window (with a RuntimeWarning)."""
    step = series.build(SeriesStage(type="series", window=2), "series", "window")
    assert _refusal(step, {"series": np.array([1.0, 1e300])}) == (
        "input 'series' holds values too large for this model in its last 2: scaled, they "
        "must stay within FP32's ±3.4e+38"
    )


def test_tabular_values_that_are_not_one_number() -> None:
    """Regression: ragged lists (ValueError from numpy) and integers beyond a double
    (OverflowError) were 500s; a finite FP64 value beyond FP32 once scaled became inf."""
    step = tabular.build(TabularStage(type="tabular", features=["age"]), "x")
    assert _refusal(step, {"age": [[1], [1, 2]]}) == (
        "feature 'age' must be one value; got [[1], [1, 2]]"
    )
    assert _refusal(step, {"age": 10**400}).startswith("feature 'age' must be a number; got 1000")
    assert _refusal(step, {"age": np.float64(1e300)}) == (
        "feature(s) age are too large for this model: scaled, they must stay within FP32's ±3.4e+38"
    )
