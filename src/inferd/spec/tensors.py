"""The `inputs:` and `outputs:` of model.yaml: a tensor's name, datatype and shape."""

from __future__ import annotations

from pydantic import Field, field_validator

from inferd.datatypes import DATATYPES
from inferd.spec.base import _Strict


class TensorSpec(_Strict):
    """A named tensor. `shape` is per item (no batch dimension) when the model batches."""

    name: str
    datatype: str
    shape: list[int] = Field(default_factory=lambda: [-1])

    @field_validator("datatype")
    @classmethod
    def _known_datatype(cls, value: str) -> str:
        upper = value.upper()
        if upper not in DATATYPES:
            raise ValueError(f"unknown datatype {value!r}; use one of {', '.join(DATATYPES)}")
        return upper

    @field_validator("shape")
    @classmethod
    def _valid_dims(cls, value: list[int]) -> list[int]:
        if any(dim < -1 or dim == 0 for dim in value):
            raise ValueError(f"shape {value}: each dimension is a positive size or -1 (any size)")
        return value
