"""The per-item stages: preprocessing by modality and postprocessing by task.

A stage sees ONE item and never its batch-mates, so a bad item fails alone. An `Item` carries
one request item through the stages: its named values (numpy arrays without the batch
dimension, or bytes), notes for the client and context for postprocessing; predictions are
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

Values = dict[str, Any]
"""Named values of one item: input name → np.ndarray without the batch dimension, or bytes."""


@dataclass(slots=True, eq=False)
class Item:
    """One request item on its way through the stages.

    Each preprocess stage replaces `values` with a new dict and never changes the one it read,
    so `inputs` stays as the client sent it for stage 6 (rules read it) and the prediction log.
    """

    inputs: Values
    """The decoded wire inputs (stage 1), never changed afterwards."""
    values: Values
    """What the next stage reads: the wire inputs, then the model's input tensors."""
    notes: dict[str, Any] = field(default_factory=dict)
    """What stages tell the client about the item (e.g. truncation), returned with its answer."""
    context: dict[str, Any] = field(default_factory=dict)
    """What postprocessing must know of preprocessing, keyed by wire input name (e.g. an
    `ImageGeometry`: how an image was resized)."""

    @classmethod
    def of(cls, inputs: Values) -> Item:
        """A decoded item, before any stage ran."""
        return cls(inputs, inputs)

    def wire_bytes(self) -> int:
        """How big the client's inputs are (an image's or a text's bytes, a tensor's): what
        its preprocessing costs grows with this."""
        size = 0
        for value in self.inputs.values():
            if isinstance(value, np.ndarray) and value.dtype == np.object_:
                size += sum(len(v) for v in value.flat if isinstance(v, bytes | str))
            else:
                size += getattr(value, "nbytes", 8)
        return size


@dataclass(frozen=True)
class ImageGeometry:
    """How an image was placed on the model's input: model pixel = original * scale + offset."""

    width: int
    height: int
    """The original image's size in pixels."""
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """[n, 4] x1, y1, x2, y2 boxes in model pixels → the original image's, clipped to it."""
        x = (boxes[:, [0, 2]] - self.offset_x) / self.scale_x
        y = (boxes[:, [1, 3]] - self.offset_y) / self.scale_y
        mapped = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)
        return np.clip(mapped, 0.0, [self.width, self.height, self.width, self.height])


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


Preprocess = Callable[[Item], None]
"""Turns an item's wire values into (some of) the model's input tensors: sets `item.values`
to a new dict (and may add notes or context)."""


@dataclass
class Postprocess:
    """Turns one item's raw model outputs (and its preprocessing context) into a Prediction."""

    run: Callable[[dict[str, np.ndarray], dict[str, Any]], Prediction]
    outputs: list[TensorSpec]
    """The V2 output tensors this stage produces (per item), for model metadata."""
    ragged: dict[str, Any] = field(default_factory=dict)
    """Outputs whose first axis varies per item (e.g. detections), and the value that pads
    them to a common length when a V2 response stacks several items."""


def only_value(values: Values, name: str, what: str) -> Any:
    """An item's value for a wire input, with a clear error when it is absent."""
    try:
        return values[name]
    except KeyError:
        raise BadRequestError(
            f"{what} needs input {name!r}; the request gave {sorted(values) or 'no inputs'}"
        ) from None


def encoded_bytes(value: Any, name: str, kind: str) -> bytes:
    """The raw file bytes of a BYTES input, whether sent as bytes or a 1-element tensor.

    `kind` names what the bytes should be, for the error message: "an image file (PNG, ...)".
    """
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise BadRequestError(
                f"input {name!r} must hold exactly one encoded file per item; got {value.size}"
            )
        value = value.reshape(-1)[0]
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise BadRequestError(
            f"input {name!r} must be {kind} sent as BYTES "
            'or, in a V1 instance, as {"b64": "<base64>"}'
        )
    if len(value) == 0:
        raise BadRequestError(f"input {name!r} is empty; send the bytes of {kind}")
    return bytes(value)
