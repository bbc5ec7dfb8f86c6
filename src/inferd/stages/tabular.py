"""Tabular preprocessing: named features → one scaled feature vector.

Features are taken in the order model.yaml declares, whatever order the client sent them
in; missing, non-numeric and non-finite values are refused with the feature's name. A text
feature with declared `categories` is coded as its value's position in that list.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inferd.codecs import shown
from inferd.datatypes import numpy_dtype
from inferd.errors import BadRequestError
from inferd.spec import TabularStage
from inferd.stages import Item, Preprocess


def _array(value: Any, feature: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError:  # nested lists of unequal lengths
        raise BadRequestError(
            f"feature {feature!r} must be one value; got {shown(value)}"
        ) from None


def _scalar(value: Any, feature: str) -> float:
    array = _array(value, feature)
    if array.size != 1:
        raise BadRequestError(f"feature {feature!r} must be one number; got {array.size} values")
    try:
        number = float(array.reshape(-1)[0])
    except (TypeError, ValueError, OverflowError):  # text, bytes, objects, ints past 1e308
        raise BadRequestError(f"feature {feature!r} must be a number; got {shown(value)}") from None
    return number


def _coded(value: Any, feature: str, values: list[str]) -> float:
    """A text feature as its value's position in model.yaml's list of its categories."""
    array = _array(value, feature)
    if array.size != 1:
        raise BadRequestError(f"feature {feature!r} must be one value; got {array.size} values")
    given = array.reshape(-1)[0]
    text = given.decode("utf-8", "replace") if isinstance(given, bytes) else str(given)
    try:
        return float(values.index(text))
    except ValueError:
        raise BadRequestError(
            f"feature {feature!r} must be one of {', '.join(values)}; got {text!r}"
        ) from None


def build(stage: TabularStage, output_name: str) -> Preprocess:
    """A preprocess function stacking the declared features into `output_name`."""
    features = list(stage.features)
    consumed = set(features)
    mean = np.asarray(stage.mean if stage.mean is not None else [0.0] * len(features))
    std = np.asarray(stage.std if stage.std is not None else [1.0] * len(features))
    dtype = numpy_dtype(stage.datatype)
    largest = float(np.finfo(np.float64 if stage.datatype == "FP64" else np.float32).max)
    categories = stage.categories

    def preprocess(item: Item) -> None:
        given = item.values
        missing = [f for f in features if f not in given]
        if missing:
            raise BadRequestError(
                f"missing feature(s) {', '.join(missing)}; this model needs all of: "
                f"{', '.join(features)}"
            )
        values = np.array(
            [
                _coded(given[f], f, categories[f]) if f in categories else _scalar(given[f], f)
                for f in features
            ],
            dtype=np.float64,
        )
        bad = [f for f, v in zip(features, values, strict=True) if not np.isfinite(v)]
        if bad:
            raise BadRequestError(
                f"feature(s) {', '.join(bad)} are NaN or infinite; send finite numbers"
            )
        with np.errstate(over="ignore"):
            scaled = ((values - mean) / std).astype(dtype)
        big = [f for f, v in zip(features, scaled, strict=True) if not np.isfinite(v)]
        if big:  # finite as sent, beyond the input's datatype once scaled
            raise BadRequestError(
                f"feature(s) {', '.join(big)} are too large for this model: scaled, they must "
                f"stay within {stage.datatype}'s ±{largest:.3g}"
            )
        out = {k: v for k, v in given.items() if k not in consumed}
        out[output_name] = scaled
        item.values = out

    return preprocess
