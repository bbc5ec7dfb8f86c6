"""The binary tensor data extension: the header that says where the JSON part ends, the
BYTES element layout (a 4-byte little-endian length, then the bytes) and raw tensor bytes
read back into arrays."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from inferd.datatypes import numpy_dtype
from inferd.errors import BadRequestError

HEADER_CONTENT_LENGTH = "inference-header-content-length"

_LENGTH = struct.Struct("<I")  # the length prefix of each element of a binary BYTES tensor


def _count_error(label: str, shape: list[int], count: int, given: int) -> BadRequestError:
    return BadRequestError(f"{label}: shape {shape} needs {count} values but {given} were given")


def _from_binary(
    label: str, datatype: str, shape: list[int], body: bytes, offset: int, size: int
) -> npt.NDArray[Any]:
    dtype, count = numpy_dtype(datatype), math.prod(shape)
    if datatype == "BYTES":
        items: list[bytes] = []
        pos, end = offset, offset + size
        while pos < end:
            if pos + 4 > end:
                raise BadRequestError(f"{label}: BYTES data ends inside an element's length prefix")
            (n,) = _LENGTH.unpack_from(body, pos)
            pos += 4
            if pos + n > end:
                raise BadRequestError(
                    f"{label}: a BYTES element announces {n} bytes but {end - pos} are left "
                    "(each element is a 4-byte little-endian length, then its bytes)"
                )
            items.append(body[pos : pos + n])
            pos += n
        if len(items) != count:
            raise _count_error(label, shape, count, len(items))
        out = np.empty(count, dtype=object)
        out[:] = items
        return out
    need = count * dtype.itemsize
    if size != need:
        raise BadRequestError(
            f"{label}: shape {shape} of {datatype} needs {need} bytes of binary data "
            f"but binary_data_size is {size}"
        )
    if datatype == "BOOL":  # one byte per element; any non-zero byte is true
        return np.frombuffer(body, dtype=np.uint8, count=count, offset=offset).astype(bool)
    # The wire is little-endian; astype makes an aligned, writable, native-order copy (the
    # body is immutable bytes, and backends may write into or hand off their inputs).
    wire = np.frombuffer(body, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
    return wire.astype(dtype)
