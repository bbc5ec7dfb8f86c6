"""Series preprocessing: a client's history of values → the window a forecaster reads.

The client sends the series oldest first, as long as it likes; the model reads the latest
`window` values, standardized. A series that is too short, not one-dimensional, or holds
NaN/inf is refused with a message that says how many values are needed.
"""

from __future__ import annotations

import numpy as np

from inferd.codecs import shown
from inferd.errors import BadRequestError
from inferd.spec import SeriesStage
from inferd.stages import Item, Preprocess, only_value

_FP32_MAX = float(np.finfo(np.float32).max)


def build(stage: SeriesStage, input_name: str, output_name: str) -> Preprocess:
    """A preprocess function cutting and scaling the window of `input_name`."""
    window = stage.window
    mean = np.float64(stage.mean)
    std = np.float64(stage.std)

    def preprocess(item: Item) -> None:
        given = only_value(item.values, input_name, "the series stage")
        try:
            values = np.asarray(given, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):  # text, bytes, ragged lists, huge ints
            raise BadRequestError(
                f"input {input_name!r} must be a flat list of numbers, oldest first; got "
                f"{shown(given)}"
            ) from None
        if values.ndim != 1:
            raise BadRequestError(
                f"input {input_name!r} must be a flat list of numbers, oldest first; "
                f"got shape {list(values.shape)}"
            )
        if values.size < window:
            raise BadRequestError(
                f"input {input_name!r} has {values.size} values but this model reads the "
                f"last {window}; send at least {window}"
            )
        recent = values[-window:]
        if not np.isfinite(recent).all():
            raise BadRequestError(
                f"input {input_name!r} holds NaN or infinite values in its last {window}; "
                "fill the gaps before forecasting"
            )
        with np.errstate(over="ignore"):
            scaled = ((recent - mean) / std).astype(np.float32)
        if not np.isfinite(scaled).all():  # finite in float64, beyond float32 once scaled
            raise BadRequestError(
                f"input {input_name!r} holds values too large for this model in its last "
                f"{window}: scaled, they must stay within FP32's ±{_FP32_MAX:.3g}"
            )
        out = {k: v for k, v in item.values.items() if k != input_name}
        out[output_name] = scaled[:, np.newaxis] if stage.layout == "W1" else scaled
        item.values = out

    return preprocess
