"""The inference request, response and tensor types: plain dataclasses of numpy arrays that
transports hand the DataPlane, with nothing of any wire format in them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt


@dataclass
class InferTensor:
    name: str
    datatype: str  # V2 datatype string, e.g. "FP32", "BYTES"
    shape: list[int]
    data: npt.NDArray[Any]  # reshaped to `shape`; BYTES → dtype=object array of `bytes`
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class RequestedOutput:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)  # e.g. {"binary_data": True}


@dataclass
class InferRequest:
    inputs: list[InferTensor]
    outputs: list[RequestedOutput] | None = None  # None = all outputs
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class InferResponse:
    model_name: str
    outputs: list[InferTensor]
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
