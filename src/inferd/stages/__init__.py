"""The per-item stages: preprocessing by modality and postprocessing by task.

A stage sees ONE item and never its batch-mates, so a bad item fails alone. Items are plain
dicts of named values (numpy arrays without the batch dimension, or bytes); predictions are
`Prediction`s, which carry the same answer in two shapes: a JSON object for people (V1,
`inferd predict --json`) and named tensors for the Open Inference Protocol (V2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inferd.errors import BadRequestError
from inferd.spec import TensorSpec

Item = dict[str, Any]
"""One request item: wire input name → value (np.ndarray without batch dim, or bytes)."""

NOTES = "__notes__"
"""Item key where stages leave notes for the client (e.g. truncation); not a tensor."""


@dataclass
class Prediction:
    """A postprocessed answer for one item."""

    fields: dict[str, Any]
    """JSON-able object a person reads, e.g. {"label": "7", "score": 0.98, "top_k": [...]}."""
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    """The same answer as named tensors (per item, no batch dim) for V2 responses."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """Notes about how the item was handled (e.g. truncation), returned to the client."""

    def as_json(self) -> dict[str, Any]:
        """The V1 / `inferd predict --json` object: the fields, plus notes when there are any."""
        return {**self.fields, "parameters": self.parameters} if self.parameters else self.fields


Preprocess = Callable[[Item], Item]
"""Turns an item's wire values into (some of) the model's input tensors."""


@dataclass
class Postprocess:
    """Turns one item's raw model outputs into a Prediction."""

    run: Callable[[dict[str, np.ndarray]], Prediction]
    outputs: list[TensorSpec]
    """The V2 output tensors this stage produces (per item), for model metadata."""


def only_value(item: Item, name: str, what: str) -> Any:
    """The item's value for a wire input, with a clear error when it is absent."""
    try:
        return item[name]
    except KeyError:
        raise BadRequestError(
            f"{what} needs input {name!r}; the request gave {sorted(item) or 'no inputs'}"
        ) from None
