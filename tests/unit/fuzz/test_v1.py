"""Stage 1 for V1 instances and V2 tensors: whatever a client sends, each input becomes an
array of its declared datatype and shape, or the request is refused with a 400."""

from __future__ import annotations

import base64
import math
import warnings
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inferd.codecs import InferTensor
from inferd.datatypes import DATATYPES, numpy_dtype
from inferd.errors import BadRequestError
from inferd.spec import TensorSpec
from inferd.stages import Item
from inferd.stages.decode import InputDecoder
from tests.unit.fuzz.outcome import JSON, SCALARS, examples, outcome, sometimes

SPEC_SHAPES = st.lists(st.sampled_from([-1, 1, 2, 3]), max_size=3)


def fits(array: np.ndarray, spec: TensorSpec) -> bool:
    shape = array.shape
    if spec.shape == [1] and shape == ():  # never: the decoder adds the axis
        return False
    return len(shape) == len(spec.shape) and all(
        d == -1 or a == d for a, d in zip(shape, spec.shape, strict=True)
    )


def check_item(item: Item, specs: list[TensorSpec]) -> None:
    assert set(item.inputs) == {spec.name for spec in specs}
    for spec in specs:
        array = item.inputs[spec.name]
        assert isinstance(array, np.ndarray)
        assert array.dtype == numpy_dtype(spec.datatype), (array.dtype, spec.datatype)
        assert fits(array, spec), (array.shape, spec.shape)
        if spec.datatype == "BYTES":
            assert all(isinstance(v, bytes) for v in array.flat)


@st.composite
def specs(draw: st.DrawFn) -> list[TensorSpec]:
    names = draw(st.lists(st.sampled_from(["x", "y", "b64", "text"]), min_size=1, unique=True))
    return [
        TensorSpec(name=name, datatype=draw(st.sampled_from(DATATYPES)), shape=draw(SPEC_SHAPES))
        for name in names
    ]


def _leaf(datatype: str) -> st.SearchStrategy[Any]:
    if datatype == "BYTES":
        b64 = st.binary(max_size=6).map(lambda b: {"b64": base64.b64encode(b).decode()})
        return st.text(max_size=6) | b64
    if datatype == "BOOL":
        return st.booleans()
    if datatype.startswith("FP"):
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**40), 2**40)
    info = np.iinfo(numpy_dtype(datatype))
    return st.integers(int(info.min), int(info.max))


@st.composite
def value_for(draw: st.DrawFn, spec: TensorSpec) -> Any:
    """A JSON value for one item of `spec`: mostly the right shape and kind, sometimes not."""
    shape = [draw(st.integers(1, 3)) if d == -1 else d for d in spec.shape]
    if sometimes(draw, 6):
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
    leaf = _leaf(spec.datatype) | SCALARS if sometimes(draw, 5) else _leaf(spec.datatype)
    values = draw(st.lists(leaf, min_size=math.prod(shape), max_size=math.prod(shape)))
    for size in reversed(shape[1:]):
        values = [values[i : i + size] for i in range(0, len(values), size)] if size else []
    if not shape:
        return values[0]
    return draw(JSON) if sometimes(draw, 10) else values


@st.composite
def spec_and_instance(draw: st.DrawFn) -> tuple[list[TensorSpec], Any]:
    inputs = draw(specs())
    instance: Any = {spec.name: draw(value_for(spec)) for spec in inputs}
    if len(inputs) == 1 and draw(st.booleans()):
        instance = instance[inputs[0].name]
    if sometimes(draw, 8):
        instance = draw(JSON)
    elif sometimes(draw, 8) and isinstance(instance, dict):
        instance[draw(st.text(max_size=3))] = draw(JSON)
    # What reaches the decoder went through orjson: no NaN, no integers past 64 bits.
    try:
        instance = orjson.loads(orjson.dumps(instance))
    except orjson.JSONEncodeError:
        instance = None
    return inputs, instance


@settings(max_examples=examples(500))
@given(spec_and_instance(), st.booleans())
def test_near_valid_instances(case: tuple[list[TensorSpec], Any], batched: bool) -> None:
    inputs, instance = case
    result = outcome(InputDecoder(inputs, batched).item_from_instance, instance)
    if isinstance(result, Item):
        check_item(result, inputs)


@settings(max_examples=examples(300))
@given(specs(), JSON)
def test_any_json_instance(inputs: list[TensorSpec], instance: Any) -> None:
    result = outcome(InputDecoder(inputs, True).item_from_instance, instance)
    if isinstance(result, Item):
        check_item(result, inputs)


@settings(max_examples=examples(100))
@given(st.sampled_from(DATATYPES), SPEC_SHAPES, st.data())
def test_valid_instances_are_taken(datatype: str, shape: list[int], data: Any) -> None:
    spec = TensorSpec(name="x", datatype=datatype, shape=shape)
    sizes = [data.draw(st.integers(1, 3)) if d == -1 else d for d in shape]
    values = data.draw(
        st.lists(_leaf(datatype), min_size=math.prod(sizes), max_size=math.prod(sizes))
    )
    for size in reversed(sizes[1:]):
        values = [values[i : i + size] for i in range(0, len(values), size)]
    instance = values if sizes else values[0]
    result = outcome(InputDecoder([spec], True).item_from_instance, {"x": instance})
    assert isinstance(result, Item), result
    check_item(result, [spec])


@pytest.mark.parametrize("datatype", DATATYPES)
@pytest.mark.parametrize(
    "template",
    [b"%s", b"[%s]", b'[{"a": %s}]', b'{"b64": %s}', b'[{"b64": %s}]', b'{"x": %s}'],
)
def test_deeply_nested_instances(datatype: str, template: bytes) -> None:
    """Lists and objects nested as deep as orjson reads (1,024 levels), anywhere."""
    decoder = InputDecoder([TensorSpec(name="x", datatype=datatype, shape=[-1])], True)
    for depth in (40, 70, 1_000):
        for inner in (b"[" * depth + b"1" + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
            outcome(decoder.item_from_instance, orjson.loads(template % inner))


def test_a_deeply_nested_object_is_quoted_short() -> None:
    """Regression: `{value!r:.80}` printed the whole value before cutting it, so an object
    nested 1,000 deep in a numeric instance raised RecursionError (a 500)."""
    decoder = InputDecoder([TensorSpec(name="x", datatype="FP32", shape=[-1])], True)
    instance = orjson.loads(b"[" + b'{"a":' * 1_000 + b"1" + b"}" * 1_000 + b"]")
    with pytest.raises(BadRequestError) as caught:
        decoder.item_from_instance(instance)
    assert caught.value.message == "input 'x' must be FP32 numbers; got [{'a': {'a': {...}}}]"


# --- V2 tensors → items ---------------------------------------------------------------------------


@st.composite
def tensors_for(draw: st.DrawFn, inputs: list[TensorSpec], batched: bool) -> list[InferTensor]:
    """Tensors as `decode_infer_request` makes them (data of the datatype, in the shape), with
    names, datatypes and shapes that mostly match the specs."""
    batch = draw(st.integers(0, 3))
    tensors = []
    for spec in inputs:
        datatype = draw(st.sampled_from(DATATYPES)) if sometimes(draw, 8) else spec.datatype
        shape = [draw(st.integers(0, 3)) if d == -1 else d for d in spec.shape]
        if batched:
            shape = [batch if not sometimes(draw, 8) else draw(st.integers(0, 3)), *shape]
        if sometimes(draw, 8):
            shape = draw(st.lists(st.integers(0, 3), max_size=4))
        dtype = numpy_dtype(datatype)
        elements = st.binary(max_size=4) if datatype == "BYTES" else hnp.from_dtype(dtype)
        data = draw(hnp.arrays(dtype, shape, elements=elements))
        tensors.append(InferTensor(spec.name, datatype, shape, data))
    if sometimes(draw, 8):
        tensors.append(draw(st.sampled_from(tensors)) if tensors else tensors[0])
    if sometimes(draw, 8):
        tensors.pop(draw(st.integers(0, len(tensors) - 1)))
    if sometimes(draw, 8):
        tensors.append(InferTensor("other", "FP32", [1], np.zeros(1, np.float32)))
    return tensors


@settings(max_examples=examples(300))
@given(specs(), st.booleans(), st.data())
def test_tensors_become_items(inputs: list[TensorSpec], batched: bool, data: Any) -> None:
    tensors = data.draw(tensors_for(inputs, batched))
    result = outcome(InputDecoder(inputs, batched).items_from_tensors, tensors)
    if isinstance(result, list):
        assert result
        if batched:
            assert len(result) == tensors[0].data.shape[0]
        for item in result:
            check_item(item, inputs)


def test_uint64_values_past_int64_keep_every_digit() -> None:
    """Regression: numpy reads [0, 2**64 - 1024] as float64 (no integer type holds both a
    signed and that big an unsigned value), so a valid UINT64 instance was refused as out of
    range, and [1, 2**63 + 1] was silently rounded to [1, 2**63]."""
    decoder = InputDecoder([TensorSpec(name="x", datatype="UINT64", shape=[-1])], True)
    for values in ([0, 2**64 - 1024], [1, 2**63 + 1], [[2**64 - 1], [0]]):
        spec_shape = [-1] if isinstance(values[0], int) else [-1, 1]
        decoder = InputDecoder([TensorSpec(name="x", datatype="UINT64", shape=spec_shape)], True)
        array = decoder.item_from_instance(values).inputs["x"]
        assert array.dtype == np.uint64 and array.tolist() == values
    with pytest.raises(
        BadRequestError, match=r"takes UINT64 values in \[0, 18446744073709551615\]"
    ):
        decoder.item_from_instance([[-1], [2**64 - 1]])


def test_numbers_too_large_for_fp16_become_inf_without_a_warning() -> None:
    decoder = InputDecoder([TensorSpec(name="x", datatype="FP16", shape=[-1])], True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        array = decoder.item_from_instance([1e6, 1.0]).inputs["x"]
    assert array.tolist() == [np.inf, 1.0]
