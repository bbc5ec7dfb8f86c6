"""Stage 1, decode: what a client sent → items, checked against the model's wire inputs.

V2 requests arrive as named tensors with a leading batch dimension (split here into items);
V1 requests as instances a person writes (an object keyed by input names, a bare value for a
single-input model, {"b64": ...} for binary data). Every mismatch — a missing or unknown
name, a datatype, a shape, a string where numbers belong — is a 400 that says what to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from inferd.codecs import MAX_RANK, InferTensor, decode_b64, shown
from inferd.datatypes import numpy_dtype
from inferd.errors import BadRequestError
from inferd.spec import TensorSpec
from inferd.stages import Item


def _shape_ok(actual: Sequence[int], declared: Sequence[int]) -> bool:
    return len(actual) == len(declared) and all(
        d == -1 or a == d for a, d in zip(actual, declared, strict=True)
    )


def _describe_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join("any" if d == -1 else str(d) for d in shape) + "]"


def _convert_numbers(raw: np.ndarray, spec: TensorSpec, value: Any) -> np.ndarray:
    """JSON numbers (`value`, read by numpy as `raw`) → the input's dtype, refusing values the
    dtype would silently change."""
    dtype = numpy_dtype(spec.datatype)
    if dtype.kind in "iu" and raw.size:
        info = np.iinfo(dtype.type)  # type: ignore[type-var]
        wrong = f"input {spec.name!r} takes {spec.datatype} values in [{info.min}, {info.max}]"
        if raw.dtype.kind == "f" and dtype.itemsize == 8:
            exact = np.asarray(value, dtype=object)
            if all(type(v) is int for v in exact.flat):
                # int64 and uint64 values together infer as float64, which rounds them past
                # 2**53: convert the exact ints instead
                try:
                    return exact.astype(dtype)
                except OverflowError:
                    raise BadRequestError(wrong) from None
        if raw.dtype.kind == "f" and not np.array_equal(raw, np.round(raw)):
            raise BadRequestError(f"input {spec.name!r} takes whole numbers ({spec.datatype})")
        low, high = raw.min().item(), raw.max().item()  # Python numbers compare exactly
        if low < info.min or high > info.max:
            raise BadRequestError(f"{wrong}; got {low}..{high}")
    with np.errstate(over="ignore"):  # values too large for FP16/FP32 become inf, as in V2
        return raw.astype(dtype)


class InputDecoder:
    """Decodes requests for one set of wire inputs (per item when `batched`)."""

    def __init__(self, inputs: list[TensorSpec], batched: bool) -> None:
        self.inputs = inputs
        self.batched = batched
        self._input_by_name = {t.name: t for t in inputs}
        self._fixed_shapes = {t.name: tuple(t.shape) for t in inputs if -1 not in t.shape}
        """Declared shapes without "any" dimensions, matched by one tuple comparison."""

    def items_from_tensors(self, tensors: Sequence[InferTensor]) -> list[Item]:
        """V2 input tensors → items (split along the batch dimension when the model batches)."""
        by_name = self._tensors_by_name(tensors)
        arrays: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            tensor = by_name[spec.name]
            if tensor.datatype != spec.datatype:
                raise BadRequestError(
                    f"input {spec.name!r} has datatype {tensor.datatype} but the model expects "
                    f"{spec.datatype}"
                )
            arrays[spec.name] = tensor.data
        if not self.batched:
            for spec in self.inputs:
                self._check_shape(spec, arrays[spec.name].shape, "")
            return [Item.of(arrays)]
        count = self._batch_size(arrays)
        for spec in self.inputs:
            arrays[spec.name] = self._fit_item_shape(spec, arrays[spec.name], batched=True)
        return [
            Item.of({name: array[i, ...] for name, array in arrays.items()}) for i in range(count)
        ]

    def _tensors_by_name(self, tensors: Sequence[InferTensor]) -> dict[str, InferTensor]:
        """The tensors by name, refusing a name given twice and missing or unknown names."""
        by_name = {tensor.name: tensor for tensor in tensors}
        if len(by_name) != len(tensors):
            seen: set[str] = set()
            for tensor in tensors:
                if tensor.name in seen:
                    raise BadRequestError(f"input {tensor.name!r} is given twice")
                seen.add(tensor.name)
        if by_name.keys() != self._input_by_name.keys():
            self._check_names(by_name)
        return by_name

    @staticmethod
    def _batch_size(arrays: dict[str, np.ndarray]) -> int:
        """The items in a batch: every input's leading dimension, which must agree."""
        shapes = [array.shape for array in arrays.values()]
        if not all(shapes):  # a 0-d array's shape is ()
            raise BadRequestError(
                "every input needs a leading batch dimension, e.g. shape [1, ...] for one item"
            )
        count: int = shapes[0][0]
        if len(shapes) > 1 and any(shape[0] != count for shape in shapes):
            sizes = {name: array.shape[0] for name, array in arrays.items()}
            raise BadRequestError(f"inputs disagree on the batch size: {sizes}")
        if count == 0:
            raise BadRequestError("the batch is empty (batch dimension 0); send at least one item")
        return count

    def item_from_instance(self, instance: Any) -> Item:
        """A V1 instance → one item: an object keyed by input names, or a bare value."""
        if isinstance(instance, dict) and not (set(instance) == {"b64"} and len(self.inputs) == 1):
            self._check_names(instance)
            return Item.of(
                {spec.name: self._value_for(spec, instance[spec.name]) for spec in self.inputs}
            )
        if len(self.inputs) != 1:
            raise BadRequestError(
                f"this model has {len(self.inputs)} inputs "
                f"({', '.join(self._input_by_name)}); send each instance as an object keyed "
                "by them"
            )
        spec = self.inputs[0]
        return Item.of({spec.name: self._value_for(spec, instance)})

    def _check_names(self, given: dict[str, Any]) -> None:
        unknown = [name for name in given if name not in self._input_by_name]
        missing = [name for name in self._input_by_name if name not in given]
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"missing input(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown input(s) {', '.join(unknown)}")
            raise BadRequestError(
                f"{'; '.join(parts)}; this model's inputs are {', '.join(self._input_by_name)}"
            )

    def _value_for(self, spec: TensorSpec, value: Any) -> np.ndarray:
        """A JSON value for one item of `spec` → a numpy array of the item's shape."""
        if spec.datatype == "BYTES":
            array = np.array(self._json_bytes(spec.name, value), dtype=np.object_)
            if any(not isinstance(v, bytes) for v in array.reshape(-1)):
                raise BadRequestError(
                    f"input {spec.name!r} is a ragged list; every row must have the same length"
                )
        else:
            if isinstance(value, dict):
                raise BadRequestError(
                    f"input {spec.name!r} takes {spec.datatype} numbers, not an object"
                )
            try:
                raw = np.asarray(value)
            except ValueError:
                raise BadRequestError(
                    f"input {spec.name!r} is a ragged list; every row must have the same length"
                ) from None
            if raw.dtype.kind not in "biuf":
                raise BadRequestError(
                    f"input {spec.name!r} must be {spec.datatype} numbers; got {shown(value)}"
                )
            array = _convert_numbers(raw, spec, value)
        return self._fit_item_shape(spec, array, batched=False)

    def _json_bytes(self, name: str, value: Any, depth: int = 0) -> Any:
        if depth > MAX_RANK:  # a tensor has at most MAX_RANK dimensions; the stack stays safe
            raise BadRequestError(
                f"input {name!r} is nested {depth} lists deep; a tensor has at most {MAX_RANK} "
                "dimensions"
            )
        if isinstance(value, dict):
            if set(value) != {"b64"} or not isinstance(value["b64"], str):
                raise BadRequestError(
                    f'input {name!r}: binary data goes in as {{"b64": "<base64 string>"}}'
                )
            return decode_b64(value["b64"], f"input {name!r}")
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, list):
            return [self._json_bytes(name, v, depth + 1) for v in value]
        raise BadRequestError(
            f'input {name!r} takes text or {{"b64": "<base64>"}} for binary data; '
            f"got {shown(value)}"
        )

    def _fit_item_shape(self, spec: TensorSpec, array: np.ndarray, *, batched: bool) -> np.ndarray:
        shape = array.shape[1:] if batched else array.shape
        if shape == self._fixed_shapes.get(spec.name) or _shape_ok(shape, spec.shape):
            return array
        # A scalar per item for a [1]-shaped input is unambiguous: accept it.
        if spec.shape == [1] and shape == ():
            return array.reshape(*array.shape, 1)
        self._check_shape(spec, shape, "per item " if self.batched else "")
        return array

    def _check_shape(self, spec: TensorSpec, shape: Sequence[int], prefix: str) -> None:
        if not _shape_ok(shape, spec.shape):
            raise BadRequestError(
                f"input {spec.name!r} has {prefix}shape {list(shape)} but the model expects "
                f"{prefix}{_describe_shape(spec.shape)}"
                + (" after the batch dimension" if prefix else "")
            )
