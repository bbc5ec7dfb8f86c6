"""V2 JSON request bodies: any document, any near-valid body and any bytes decode into tensors
of their declared shape and datatype, or are refused with a 400 that says what to fix."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferd.codecs import InferRequest, decode_infer_request
from inferd.datatypes import DATATYPES, numpy_dtype
from inferd.errors import BadRequestError
from tests.unit.fuzz.outcome import JSON, SCALARS, dumps, examples, outcome, sometimes


def check_request(body: bytes, json_length: int | None = None) -> InferRequest | None:
    """Decode `body`; a result must hold tensors exactly as their header describes them."""
    result = outcome(decode_infer_request, body, json_length)
    if not isinstance(result, InferRequest):
        assert isinstance(result, BadRequestError)
        return None
    assert result.inputs
    for tensor in result.inputs:
        assert isinstance(tensor.name, str)
        assert tensor.data.shape == tuple(tensor.shape)
        assert tensor.data.dtype == numpy_dtype(tensor.datatype)
        if tensor.datatype == "BYTES":
            assert all(isinstance(v, bytes) for v in tensor.data.flat)
    assert len({t.name for t in result.inputs}) == len(result.inputs)
    assert result.id is None or isinstance(result.id, str)
    assert isinstance(result.parameters, dict)
    return result


# --- strategies -----------------------------------------------------------------------------------

SHAPES = st.lists(st.integers(0, 4), max_size=3)
ODD_SHAPES = st.lists(st.integers(-3, 2**64) | st.booleans() | st.floats() | st.text(max_size=2))


def _elements(datatype: str, exact: bool) -> st.SearchStrategy[Any]:
    """Values that fit the datatype; unless `exact`, mixed with values just outside it and
    values of other kinds."""
    if datatype not in DATATYPES:
        return SCALARS
    if datatype == "BYTES":
        fitting: st.SearchStrategy[Any] = st.text(max_size=8) | st.binary(max_size=8).map(
            lambda b: base64.b64encode(b).decode()
        )
    elif datatype == "BOOL":
        fitting = st.booleans()
    elif datatype.startswith("FP"):
        width = 16 if datatype == "FP16" else 64
        fitting = st.floats(width=width, allow_nan=False, allow_infinity=False)
        fitting |= st.integers(-(2**60), 2**60)
    else:
        info = np.iinfo(numpy_dtype(datatype))
        fitting = st.integers(int(info.min), int(info.max))
        if not exact:
            fitting |= st.integers(int(info.min) - 2, int(info.max) + 2) | st.floats(-1e20, 1e20)
    return fitting if exact else st.one_of(fitting, fitting, fitting, SCALARS)


@st.composite
def _data(draw: st.DrawFn, datatype: str, shape: list[int]) -> Any:
    """`data` for a tensor: the right count, flat or nested as the shape, or a near miss."""
    count = max(0, math.prod(shape) + (draw(st.sampled_from([-1, 1])) if sometimes(draw, 8) else 0))
    exact = not sometimes(draw, 4)
    values = draw(st.lists(_elements(datatype, exact), min_size=count, max_size=count))
    if draw(st.booleans()) and shape and math.prod(shape) == len(values):
        for size in reversed(shape[1:]):  # rows of the shape, innermost first
            values = [values[i : i + size] for i in range(0, len(values), size)] if size else []
    return draw(JSON) if sometimes(draw, 12) else values


@st.composite
def tensor_doc(draw: st.DrawFn) -> Any:
    """One input: mostly well-formed, with random names, datatypes, shapes, data, parameters."""
    datatype = draw(st.sampled_from(DATATYPES))
    if sometimes(draw, 12):
        datatype = draw(st.sampled_from(["fp32", "FP8", "", "STRING"]) | st.text(max_size=5))
    shape = draw(SHAPES)
    doc: dict[str, Any] = {
        "name": draw(st.sampled_from(["x", "y", "input-0", ""]) | st.text(max_size=6)),
        "datatype": datatype,
        "shape": shape,
        "data": draw(_data(datatype, shape)),
    }
    if datatype == "BYTES" and sometimes(draw, 3):
        doc["parameters"] = {"content_type": "base64"}
    if sometimes(draw, 4):
        doc["parameters"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "content_type": st.sampled_from(["base64", "str"]) | SCALARS,
                    "binary_data_size": st.integers(-2, 64) | SCALARS,
                    "shared_memory_region": st.text(max_size=4),
                    "other": JSON,
                },
            )
        )
    # Now and then, break one field: drop it or give it any JSON value.
    for key in ("name", "datatype", "shape", "data", "parameters"):
        if sometimes(draw, 30):
            doc.pop(key, None)
        elif sometimes(draw, 30):
            doc[key] = draw(ODD_SHAPES if key == "shape" else JSON)
    return doc


@st.composite
def request_doc(draw: st.DrawFn) -> Any:
    doc: dict[str, Any] = {"inputs": draw(st.lists(tensor_doc(), min_size=1, max_size=3))}
    optional = {
        "id": st.text(max_size=8) | SCALARS,
        "parameters": st.dictionaries(st.text(max_size=6), JSON, max_size=3)
        | st.just({"binary_data_output": "yes"})
        | JSON,
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=4) | SCALARS},
                optional={"parameters": st.just({"binary_data": 1}) | JSON},
            )
            | JSON,
            max_size=3,
        )
        | JSON,
    }
    for key, strategy in optional.items():
        if sometimes(draw, 4):
            doc[key] = draw(strategy)
    if sometimes(draw, 20):
        doc["inputs"] = draw(JSON)
    return doc


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=examples(300))
@given(JSON)
def test_any_json_document(doc: Any) -> None:
    check_request(dumps(doc))


@settings(max_examples=examples(200))
@given(JSON)
def test_any_json_as_the_inputs(inputs: Any) -> None:
    check_request(dumps({"inputs": inputs}))
    check_request(dumps({"inputs": [inputs]}))


@settings(max_examples=examples(600))
@given(request_doc())
def test_near_valid_bodies(doc: Any) -> None:
    check_request(dumps(doc))


@settings(max_examples=examples(300))
@given(st.binary(max_size=300), st.none() | st.integers(-2, 310))
def test_any_bytes(body: bytes, json_length: int | None) -> None:
    check_request(body, json_length)


@settings(max_examples=examples(200))
@given(st.sampled_from(DATATYPES), SHAPES, st.data())
def test_well_formed_tensors_of_every_datatype(datatype: str, shape: list[int], data: Any) -> None:
    """Values of the right kind and count decode into a tensor of that shape and datatype."""
    count = math.prod(shape)
    values = data.draw(st.lists(_elements(datatype, exact=True), min_size=count, max_size=count))
    tensor = {"name": "x", "datatype": datatype, "shape": shape, "data": values}
    request = check_request(dumps({"inputs": [tensor]}))
    assert request is not None or (datatype == "BYTES" and not shape), "refused a valid tensor"


# --- hostile shapes of JSON that strategies rarely reach ------------------------------------------


def _deep(value: bytes, depth: int) -> bytes:
    """JSON text of `value` in `depth` lists (built as text: json.dumps would recurse)."""
    return b"[" * depth + value + b"]" * depth


@pytest.mark.parametrize("datatype", DATATYPES)
@pytest.mark.parametrize("depth", [40, 70, 200, 1_000, 5_000])
def test_deeply_nested_data(datatype: str, depth: int) -> None:
    leaf = b'"a"' if datatype == "BYTES" else b"1"
    for shape in (b"[1]", b"[2]"):
        for data in (_deep(leaf, depth), _deep(b"{}", depth), _deep(b"null", depth)):
            check_request(
                b'{"inputs": [{"name": "x", "datatype": "%s", "shape": %s, "data": %s}]}'
                % (datatype.encode(), shape, data)
            )


@pytest.mark.parametrize("depth", [200, 1_000, 1_100, 100_000])
@pytest.mark.parametrize(
    "template",
    [
        b"%s",
        b'{"inputs": %s}',
        b'{"inputs": [%s]}',
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": %s, "data": []}]}',
        b'{"inputs": [{"name": %s, "datatype": "FP32", "shape": [0], "data": []}]}',
        b'{"inputs": [{"name": "x", "datatype": %s, "shape": [0], "data": []}]}',
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [0], "data": [],'
        b' "parameters": %s}]}',
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [0], "data": []}], "id": %s}',
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [0], "data": []}],'
        b' "parameters": %s}',
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [0], "data": []}], "outputs": %s}',
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [0], "data": []}],'
        b' "outputs": [%s]}',
    ],
)
def test_deeply_nested_documents(template: bytes, depth: int) -> None:
    """Every field the decoder reads, given as a deeply nested list or object."""
    check_request(template % _deep(b"", depth))
    check_request(template % (b'{"a":' * depth + b"1" + b"}" * depth))


def test_a_deeply_nested_value_is_quoted_short() -> None:
    """Regression: a refusal that quoted the client's value in full (`{value!r}`) raised
    RecursionError (a 500) on a list nested 1,000 deep, which orjson accepts."""
    for body in (
        b'{"inputs": [%s]}' % _deep(b"", 1_000),
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [0], "data": [],'
        b' "parameters": %s}]}' % _deep(b"", 1_000),
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [0], "data": []}], "id": %s}'
        % _deep(b"", 1_000),
    ):
        with pytest.raises(BadRequestError) as caught:
            decode_infer_request(body)
        assert "[[[[...]]]]" in caught.value.message and len(caught.value.message) < 200


@pytest.mark.parametrize(
    "shape",
    [[2**31], [2**62, 2**62], [0, 2**64], [2**64], [1] * 33, [0] * 40, [65536, 65536]],
)
def test_huge_shapes_are_refused_before_allocating(shape: list[int]) -> None:
    for data in ([], [1], None):
        tensor = {"name": "x", "datatype": "FP32", "shape": shape, "data": data}
        check_request(dumps({"inputs": [tensor]}))
        tensor = {
            "name": "x",
            "datatype": "BYTES",
            "shape": shape,
            "parameters": {"binary_data_size": 0},
        }
        check_request(dumps({"inputs": [tensor]}), None)
