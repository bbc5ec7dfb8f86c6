"""V2 inference request and response bodies: a JSON document of tensors, each one's data
inline as JSON or after the document as binary, decoded into `InferRequest` and encoded from
`InferResponse`. Every mistake a client can make becomes a BadRequestError that says what to
fix."""

from __future__ import annotations

import array
import base64
import math
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from inferd.codecs.binary import _LENGTH, HEADER_CONTENT_LENGTH, _count_error, _from_binary
from inferd.codecs.json import decode_b64, json_dumps, json_loads, shown
from inferd.codecs.tensors import InferRequest, InferResponse, InferTensor, RequestedOutput
from inferd.datatypes import numpy_dtype
from inferd.errors import BadRequestError

# --- requests --------------------------------------------------------------------------------


def decode_infer_request(body: bytes, json_length: int | None = None) -> InferRequest:
    """Parse a V2 inference request; binary tensors are read from after the JSON header."""
    if json_length is not None and not 0 <= json_length <= len(body):
        raise BadRequestError(
            f"{HEADER_CONTENT_LENGTH} is {json_length} but the body has only {len(body)} bytes"
        )
    try:
        doc = json_loads(body if json_length is None else body[:json_length])
    except BadRequestError as e:
        if json_length is not None or b"binary_data_size" not in body:
            raise
        hint = f"; binary tensor data needs the {HEADER_CONTENT_LENGTH} header"
        raise BadRequestError(e.message + hint) from None
    if not isinstance(doc, dict):
        raise BadRequestError('request body must be a JSON object with an "inputs" list')
    inputs_doc = doc.get("inputs")
    if not isinstance(inputs_doc, list) or not inputs_doc:
        raise BadRequestError(
            'request body needs "inputs": a non-empty list of {"name", "datatype", "shape", "data"}'
        )
    offset = json_length
    inputs: list[InferTensor] = []
    seen: set[str] = set()
    for i, item in enumerate(inputs_doc):
        tensor, offset = _decode_input(i, item, body, offset)
        if tensor.name in seen:
            raise BadRequestError(f'input "{tensor.name}" is given twice; names must be unique')
        seen.add(tensor.name)
        inputs.append(tensor)
    if offset is not None and offset != len(body):
        left = len(body) - offset
        raise BadRequestError(f"{left} bytes of binary data are left over; check binary_data_size")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError(f'"id" must be a string, got {shown(request_id)}')
    return InferRequest(
        inputs=inputs,
        outputs=_decode_outputs(doc.get("outputs")),
        id=request_id,
        parameters=_parameters(doc.get("parameters"), "request", "binary_data_output"),
    )


def _parameters(value: Any, label: str, flag: str = "") -> dict[str, Any]:
    """A copy of a "parameters" object, checking that its `flag` (if any) is a boolean."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(f'{label}: "parameters" must be a JSON object, got {shown(value)}')
    if flag in value and not isinstance(value[flag], bool):
        raise BadRequestError(f"{label}: parameters.{flag} must be true or false")
    return dict(value)


def _decode_outputs(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequestError('"outputs" must be a list of {"name": ..., "parameters": {...}}')
    outputs = []
    for i, item in enumerate(value):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise BadRequestError(f'outputs[{i}] needs a "name" string')
        params = _parameters(item.get("parameters"), f'output "{name}"', "binary_data")
        outputs.append(RequestedOutput(name=name, parameters=params))
    return outputs


def _decode_input(
    index: int, doc: Any, body: bytes, offset: int | None
) -> tuple[InferTensor, int | None]:
    """One input tensor, and the offset where the next binary tensor starts."""
    if not isinstance(doc, dict):
        raise BadRequestError(f"inputs[{index}] must be a JSON object, got {shown(doc)}")
    name = doc.get("name")
    if not isinstance(name, str):
        raise BadRequestError(f'inputs[{index}] needs a "name" string')
    label = f'input "{name}"'
    datatype = doc.get("datatype")
    if not isinstance(datatype, str):
        raise BadRequestError(f'{label} needs a "datatype" string, e.g. "FP32"')
    try:
        dtype = numpy_dtype(datatype)
    except ValueError as e:
        raise BadRequestError(f"{label}: {e}") from None
    shape = doc.get("shape")
    if not _is_shape(shape):
        raise BadRequestError(f'{label} needs "shape": a list of non-negative integers')
    if len(shape) > MAX_RANK or math.prod(d or 1 for d in shape) > MAX_ELEMENTS:
        # Even an empty tensor ([0, 2**62]) cannot be made with such a shape.
        raise BadRequestError(
            f'{label}: "shape" {shape} is too large: at most {MAX_RANK} dimensions whose '
            f"non-zero sizes multiply to at most {MAX_ELEMENTS}"
        )
    params = _parameters(doc.get("parameters"), label)
    size = params.pop("binary_data_size", None)
    if size is not None:
        if "data" in doc:
            raise BadRequestError(f'{label} has both "data" and binary_data_size; send one')
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BadRequestError(f"{label}: binary_data_size must be a non-negative integer")
        if offset is None:
            raise BadRequestError(f"{label}: binary data needs the {HEADER_CONTENT_LENGTH} header")
        if offset + size > len(body):
            left = len(body) - offset
            raise BadRequestError(f"{label}: binary_data_size is {size} but {left} bytes are left")
        data = _from_binary(label, datatype, shape, body, offset, size)
        offset += size
    elif "data" in doc:
        b64 = datatype == "BYTES" and params.get("content_type") == "base64"
        data = _from_json(label, datatype, dtype, shape, doc["data"], b64)
    elif "shared_memory_region" in params:
        raise BadRequestError(f"{label}: shared memory is not supported; send data inline")
    else:
        raise BadRequestError(f'{label} has no "data" (or binary_data_size for binary data)')
    return InferTensor(name, datatype, shape, data.reshape(shape), params), offset


MAX_RANK = 32  # numpy's own limit on dimensions
MAX_ELEMENTS = 2**31 - 1
"""The largest tensor a shape may describe (far beyond any body the server accepts)."""


def _is_shape(value: Any) -> TypeGuard[list[int]]:
    """A list of non-negative integers (JSON's true/false are not integers here)."""
    return isinstance(value, list) and all(type(d) is int and d >= 0 for d in value)


def _from_json(
    label: str, datatype: str, dtype: np.dtype[Any], shape: list[int], data: Any, b64: bool
) -> npt.NDArray[Any]:
    count = math.prod(shape)
    if not isinstance(data, list):
        raise BadRequestError(f'{label}: "data" must be a list (flat or nested, row-major)')
    fast = _flat_numbers(datatype, data, count)
    if fast is not None:
        return fast
    if datatype == "BYTES":
        flat = _flatten(data)
        if len(flat) != count:
            raise _count_error(label, shape, count, len(flat))
        bad = [v for v in flat if not isinstance(v, str)]
        if bad:
            raise BadRequestError(f"{label}: BYTES data must be strings, got {shown(bad[0])}")
        out = np.empty(count, dtype=object)  # orjson guarantees valid unicode, so encode() is safe
        out[:] = [decode_b64(v, f"{label} data") if b64 else v.encode() for v in flat]
        return out
    # Let numpy infer the element kind first, so strings/nulls/fractions are caught instead
    # of being coerced; this costs no more than converting straight to the target dtype.
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise BadRequestError(
            f"{label}: data must be numbers in a flat list or rectangular nested lists"
        ) from None
    if arr.size != count:
        raise _count_error(label, shape, count, arr.size)
    if count == 0:
        return np.empty(shape, dtype=dtype)
    kind = arr.dtype.kind
    if kind not in "biuf":
        bad = [v for v in _flatten(data) if not isinstance(v, int | float)] or [arr.dtype]
        raise BadRequestError(f"{label}: {datatype} data must be numbers, got {shown(bad[0])}")
    if dtype.kind == "b":
        if kind != "b":
            raise BadRequestError(f"{label}: BOOL data must be true or false")
        return arr
    if dtype.kind in "iu" and kind in "iuf":
        info = np.iinfo(dtype.name)
        wrong = f"{label}: {datatype} values must be whole numbers in [{info.min}, {info.max}]"
        if kind == "f" and dtype.itemsize == 8 and all(type(v) is int for v in _flatten(data)):
            # int64 and uint64 values together infer as float64; convert the exact ints instead
            try:
                return np.asarray(data, dtype=dtype)
            except OverflowError:
                raise BadRequestError(wrong) from None
        if kind == "f":
            fractions = arr[~(np.isfinite(arr) & (arr == np.trunc(arr)))]
            if fractions.size:
                raise BadRequestError(f"{wrong}, got {fractions.flat[0]}")
        lo, hi = arr.min().item(), arr.max().item()  # Python numbers compare exactly
        if lo < info.min or hi > info.max:
            raise BadRequestError(f"{wrong}, got {lo if lo < info.min else hi}")
    if dtype.kind != "f" or dtype.itemsize == 8:  # nothing left here can overflow
        return arr.astype(dtype, copy=False)
    with np.errstate(over="ignore"):  # values too large for FP16/FP32 become inf, as in C
        return arr.astype(dtype, copy=False)


def _array_codes() -> dict[str, tuple[str, type, np.dtype[Any]]]:
    """V2 datatype → the `array` typecode of the same C type, the JSON type of its values,
    and the numpy dtype (only where the sizes agree on this platform)."""
    codes = {"FP32": "f", "FP64": "d", "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q"}
    codes.update({"UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q"})
    table: dict[str, tuple[str, type, np.dtype[Any]]] = {}
    for datatype, code in codes.items():
        dtype = numpy_dtype(datatype)
        if array.array(code).itemsize == dtype.itemsize:
            table[datatype] = (code, float if dtype.kind == "f" else int, dtype)
    return table


_ARRAY_CODES = _array_codes()


def _flat_numbers(datatype: str, data: list[Any], count: int) -> npt.NDArray[Any] | None:
    """The common case (a flat list of JSON numbers for a numeric tensor) converted in C by
    `array`, about twice as fast as numpy's type inference; None sends every other case (and
    every mistake, which `array` refuses with TypeError or OverflowError) down the general path.

    It gives what the general path gives: `array` refuses what the integer datatypes refuse
    (fractions, out-of-range values), and a float first value means numpy would also have
    converted every value as a Python float (ints first go the general way: numpy would have
    made them int64, which rounds differently beyond 2**53).
    """
    found = _ARRAY_CODES.get(datatype)
    if found is None or count == 0 or len(data) != count:
        return None
    code, first_type, dtype = found
    if type(data[0]) is not first_type:
        return None
    try:
        values = array.array(code, data)
    except (TypeError, OverflowError):
        return None
    return np.frombuffer(values, dtype=dtype)


def _flatten(data: list[Any]) -> list[Any]:
    """Row-major leaves of nested lists; iterative, as JSON may nest deeper than Python recurses."""
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


# --- responses -------------------------------------------------------------------------------


def select_outputs(
    response_outputs: list[InferTensor], request: InferRequest | None
) -> list[InferTensor]:
    """The outputs the request asked for, in its order; all of them when it named none."""
    if request is None or not request.outputs:
        return list(response_outputs)
    by_name = {t.name: t for t in response_outputs}
    selected = []
    for wanted in request.outputs:
        if wanted.name not in by_name:
            available = ", ".join(f'"{n}"' for n in by_name) or "none"
            raise BadRequestError(
                f'unknown output "{wanted.name}" requested; the available outputs are {available}'
            )
        selected.append(by_name[wanted.name])
    return selected


def encode_infer_response(
    response: InferResponse, request: InferRequest | None = None
) -> tuple[bytes, int | None]:
    """Serialize a response; the second item is the JSON header length, None if all-JSON."""
    outputs = select_outputs(response.outputs, request)
    requested = {o.name: o for o in request.outputs} if request and request.outputs else {}
    default_binary = bool(request and request.parameters.get("binary_data_output") is True)
    chunks: list[bytes] = []
    docs = []
    any_binary = False
    for tensor in outputs:
        wanted = requested.get(tensor.name)
        own = wanted.parameters.get("binary_data") if wanted else None
        binary = default_binary if own is None else own is True
        any_binary = any_binary or binary
        docs.append(_encode_output(tensor, binary, chunks))
    doc: dict[str, Any] = {"model_name": response.model_name}  # fields in the V2 order
    if response.model_version is not None:
        doc["model_version"] = response.model_version
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    doc["outputs"] = docs
    header = json_dumps(doc)
    if not any_binary:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _encode_output(tensor: InferTensor, binary: bool, chunks: list[bytes]) -> dict[str, Any]:
    params = dict(tensor.parameters)
    doc: dict[str, Any] = {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": [int(d) for d in tensor.shape],
    }
    if tensor.datatype == "BYTES":
        flat = np.asarray(tensor.data, dtype=object).ravel().tolist()
        items = [v if isinstance(v, bytes) else str(v).encode() for v in flat]
        if binary:
            raw = b"".join(_LENGTH.pack(len(b)) + b for b in items)
        else:
            try:
                doc["data"] = [b.decode() for b in items]
            except UnicodeDecodeError:  # JSON strings can't hold raw bytes: send all as base64
                doc["data"] = [base64.b64encode(b).decode("ascii") for b in items]
                params["content_type"] = "base64"
    else:
        wire = np.ascontiguousarray(tensor.data, dtype=numpy_dtype(tensor.datatype)).ravel()
        if binary:
            raw = wire.astype(wire.dtype.newbyteorder("<"), copy=False).tobytes()
        else:
            doc["data"] = wire  # orjson writes contiguous numpy arrays natively
    if binary:
        params["binary_data_size"] = len(raw)
        chunks.append(raw)
    if params:
        doc["parameters"] = params
    return doc
