"""The Open Inference Protocol's tensor datatypes and their numpy equivalents.

One table, used by the spec (to validate model.yaml), the codecs (to read and write the wire)
and the backends (to describe an artifact's tensors).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]

_NUMPY_BY_DATATYPE: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
_DATATYPE_BY_NUMPY: dict[np.dtype[np.generic], str] = {
    dtype: name for name, dtype in _NUMPY_BY_DATATYPE.items()
}

DATATYPES: tuple[str, ...] = tuple(_NUMPY_BY_DATATYPE)


def numpy_dtype(datatype: str) -> np.dtype[np.generic]:
    """The numpy dtype that holds a tensor of this V2 datatype (BYTES → object of bytes)."""
    try:
        return _NUMPY_BY_DATATYPE[datatype]
    except KeyError:
        raise ValueError(
            f"unknown datatype {datatype!r}; use one of {', '.join(DATATYPES)}"
        ) from None


def datatype_of(dtype: np.dtype[np.generic]) -> str:
    """The V2 datatype for a numpy dtype; strings and bytes are BYTES."""
    if dtype.kind in ("U", "S", "O"):
        return "BYTES"
    try:
        return _DATATYPE_BY_NUMPY[dtype]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no Open Inference Protocol datatype") from None


def is_float(datatype: str) -> bool:
    return datatype in ("FP16", "FP32", "FP64")
