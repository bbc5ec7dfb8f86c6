"""The tabular stage: named features in declared order, scaled, refused with their names."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from inferd.errors import BadRequestError
from inferd.spec import TabularStage
from inferd.stages import tabular
from tests.support.stages import values_after


def _build(**options: Any) -> Any:
    options.setdefault("features", ["age", "height", "weight"])
    return values_after(tabular.build(TabularStage(type="tabular", **options), "x"))


def _error(item: dict[str, Any], **options: Any) -> str:
    with pytest.raises(BadRequestError) as caught:
        _build(**options)(item)
    return caught.value.message


def test_features_are_stacked_in_declared_order() -> None:
    out = _build()({"weight": 70.0, "age": 30, "height": np.array([1.8])})
    assert set(out) == {"x"}
    assert out["x"].dtype == np.float32
    np.testing.assert_allclose(out["x"], [30.0, 1.8, 70.0], rtol=1e-6)


def test_scaling_per_feature() -> None:
    preprocess = _build(mean=[40.0, 1.7, 80.0], std=[10.0, 0.1, 20.0])
    out = preprocess({"age": 30, "height": 1.8, "weight": 70.0})
    np.testing.assert_allclose(out["x"], [-1.0, 1.0, -0.5], rtol=1e-5)


def test_fp64_datatype_keeps_precision() -> None:
    out = _build(features=["a"], datatype="FP64")({"a": 0.1 + 1e-12})
    assert out["x"].dtype == np.float64
    assert out["x"][0] == 0.1 + 1e-12


def test_other_inputs_pass_through() -> None:
    out = _build(features=["a"])({"a": 1.0, "note": b"keep"})
    assert out["note"] == b"keep"
    assert out["x"].tolist() == [1.0]


def test_booleans_and_numeric_strings_become_numbers() -> None:
    out = _build(features=["a", "b"])({"a": True, "b": "2.5"})
    assert out["x"].tolist() == [1.0, 2.5]


def test_missing_features_are_all_named() -> None:
    message = _error({"height": 1.0})
    assert message.startswith("missing feature(s) age, weight;")
    assert "needs all of: age, height, weight" in message


def test_non_numeric_feature_is_named() -> None:
    message = _error({"age": "old", "height": 1.0, "weight": 2.0})
    assert message == "feature 'age' must be a number; got 'old'"


def test_none_feature_is_refused() -> None:
    assert "feature 'height' must be a number" in _error({"age": 1, "height": None, "weight": 2})


def test_several_values_for_one_feature() -> None:
    message = _error({"age": [1, 2], "height": 1.0, "weight": 2.0})
    assert message == "feature 'age' must be one number; got 2 values"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_features_are_named(bad: float) -> None:
    message = _error({"age": 1.0, "height": bad, "weight": bad})
    assert message == "feature(s) height, weight are NaN or infinite; send finite numbers"


def test_a_text_feature_is_coded_by_its_category() -> None:
    preprocess = _build(features=["income", "group"], categories={"group": ["A", "B"]})
    out = preprocess({"income": 50.0, "group": np.array([b"B"], dtype=object)})
    np.testing.assert_allclose(out["x"], [50.0, 1.0])
    assert preprocess({"income": 1.0, "group": "A"})["x"][1] == 0.0


def test_an_unknown_category_is_a_400_naming_the_values() -> None:
    message = _error(
        {"income": 1.0, "group": "C"},
        features=["income", "group"],
        categories={"group": ["A", "B"]},
    )
    assert message == "feature 'group' must be one of A, B; got 'C'"


def test_categories_must_name_features() -> None:
    with pytest.raises(ValueError, match="categories names 'colour'"):
        TabularStage(type="tabular", features=["a"], categories={"colour": ["red"]})
