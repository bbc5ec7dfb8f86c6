"""The binary tensor data extension: a JSON header of `Inference-Header-Content-Length` bytes,
then raw tensor bytes. Whatever the header says and whatever bytes follow, the body decodes into
exactly the tensors it describes, or is refused with a 400."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inferd.codecs import InferRequest
from inferd.datatypes import DATATYPES, numpy_dtype
from tests.unit.fuzz.outcome import JSON, SCALARS, dumps, examples, sometimes
from tests.unit.fuzz.test_v2_json import SHAPES, check_request

NUMERIC = [d for d in DATATYPES if d != "BYTES"]


def body_of(header: Any, tail: bytes) -> tuple[bytes, int]:
    json_part = dumps(header)
    return json_part + tail, len(json_part)


def bytes_elements(items: list[bytes]) -> bytes:
    """BYTES elements as Triton lays them out: a 4-byte little-endian length, then the bytes."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


@st.composite
def binary_tensor(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """One input's header entry and its binary bytes: mostly consistent, sometimes not."""
    datatype = draw(st.sampled_from(DATATYPES))
    shape = draw(SHAPES)
    count = math.prod(shape)
    if datatype == "BYTES":
        items = draw(st.lists(st.binary(max_size=6), min_size=count, max_size=count))
        raw = bytes_elements(items)
        if sometimes(draw, 5):  # a length prefix that lies
            raw = struct.pack("<I", draw(st.integers(0, 2**32 - 1))) + raw[4:]
    else:
        need = count * numpy_dtype(datatype).itemsize
        raw = draw(st.binary(min_size=need, max_size=need))
    size: Any = len(raw)
    if sometimes(draw, 6):
        size = draw(st.integers(-2, 80) | SCALARS)
    if sometimes(draw, 6):
        raw = draw(st.binary(max_size=40))
    parameters: dict[str, Any] = {"binary_data_size": size}
    if sometimes(draw, 10):
        parameters.update(draw(st.dictionaries(st.text(max_size=6), JSON, max_size=2)))
    doc = {"name": draw(st.text(max_size=4)), "datatype": datatype, "shape": shape}
    doc["parameters"] = parameters
    if sometimes(draw, 12):
        doc["data"] = draw(JSON)
    return doc, raw


@settings(max_examples=examples(250))
@given(
    st.lists(binary_tensor(), min_size=1, max_size=3),
    st.lists(
        st.fixed_dictionaries(
            {"name": st.text(max_size=3), "datatype": st.sampled_from(DATATYPES)},
            optional={"shape": SHAPES, "data": JSON},
        ),
        max_size=1,
    ),
    st.integers(-3, 3),
    st.binary(max_size=8),
)
def test_near_valid_binary_bodies(
    tensors: list[tuple[dict[str, Any], bytes]], json_inputs: list[Any], shift: int, extra: bytes
) -> None:
    """Header entries and tails that mostly agree; a header length off by a few bytes; JSON
    inputs among the binary ones; trailing bytes."""
    header = {"inputs": [doc for doc, _ in tensors] + json_inputs}
    body, length = body_of(header, b"".join(raw for _, raw in tensors))
    check_request(body, length)
    check_request(body, length + shift)
    check_request(body + extra, length)
    check_request(body, None)


@settings(max_examples=examples(200))
@given(JSON, st.binary(max_size=200), st.integers(-2, 400))
def test_any_header_and_tail(header: Any, tail: bytes, shift: int) -> None:
    body, length = body_of(header, tail)
    check_request(body, length)
    check_request(body, max(0, length + shift))
    check_request(body, len(body) + 1 + shift)


@settings(max_examples=examples(200))
@given(st.binary(max_size=300), st.integers(0, 310))
def test_any_bytes_with_a_header_length(body: bytes, length: int) -> None:
    check_request(body, length)


@settings(max_examples=examples(150))
@given(st.sampled_from(NUMERIC), st.data())
def test_numeric_tensors_come_back_as_sent(datatype: str, data: Any) -> None:
    """A consistent body is never refused and gives back the sent values, little-endian."""
    dtype = numpy_dtype(datatype)
    array = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0)))
    raw = array.astype(dtype.newbyteorder("<")).tobytes()
    doc = {"name": "x", "datatype": datatype, "shape": list(array.shape)}
    doc["parameters"] = {"binary_data_size": len(raw)}
    request = check_request(*body_of({"inputs": [doc]}, raw))
    assert isinstance(request, InferRequest)
    np.testing.assert_array_equal(request.inputs[0].data, array)


@settings(max_examples=examples(100))
@given(st.lists(st.binary(max_size=20), max_size=8), st.binary(max_size=8))
def test_bytes_tensors_come_back_as_sent(items: list[bytes], junk: bytes) -> None:
    doc = {"name": "t", "datatype": "BYTES", "shape": [len(items)]}
    raw = bytes_elements(items)
    doc["parameters"] = {"binary_data_size": len(raw)}
    request = check_request(*body_of({"inputs": [doc]}, raw))
    assert isinstance(request, InferRequest)
    assert request.inputs[0].data.tolist() == items
    # The same header over other bytes of that size: the elements they spell, or a refusal.
    check_request(*body_of({"inputs": [doc]}, (junk * len(raw))[: len(raw)]))


def test_bool_bytes_other_than_zero_and_one() -> None:
    doc = {"name": "b", "datatype": "BOOL", "shape": [3], "parameters": {"binary_data_size": 3}}
    request = check_request(*body_of({"inputs": [doc]}, b"\x00\x01\xff"))
    assert isinstance(request, InferRequest)
    assert request.inputs[0].data.tolist() == [False, True, True]
