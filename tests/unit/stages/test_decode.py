"""Stage 1, decode: V2 tensors and V1 instances → items, checked against the wire inputs."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from inferd.codecs import InferTensor
from inferd.errors import BadRequestError
from inferd.spec import TensorSpec
from inferd.stages.decode import InputDecoder


def _spec(name: str, datatype: str, shape: list[int]) -> TensorSpec:
    return TensorSpec(name=name, datatype=datatype, shape=shape)


def _tensor(name: str, datatype: str, array: np.ndarray) -> InferTensor:
    return InferTensor(name=name, datatype=datatype, shape=list(array.shape), data=array)


def _fp32(*shape: int) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)


def _refused(call: Any, *args: Any) -> str:
    with pytest.raises(BadRequestError) as caught:
        call(*args)
    assert caught.value.status_code == 400
    return caught.value.message


@pytest.fixture
def pair() -> InputDecoder:
    """a: FP32 [-1] and b: INT64 [] per item, batched."""
    return InputDecoder([_spec("a", "FP32", [-1]), _spec("b", "INT64", [])], batched=True)


@pytest.fixture
def vector() -> InputDecoder:
    """x: FP32 [4] per item, batched."""
    return InputDecoder([_spec("x", "FP32", [4])], batched=True)


@pytest.fixture
def text() -> InputDecoder:
    """t: BYTES [1] per item, batched."""
    return InputDecoder([_spec("t", "BYTES", [1])], batched=True)


# --- V2 tensors → items -------------------------------------------------------------------------


def test_batched_tensors_are_split_into_items(pair: InputDecoder) -> None:
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    b = np.array([10, 20], dtype=np.int64)
    items = pair.items_from_tensors([_tensor("b", "INT64", b), _tensor("a", "FP32", a)])
    assert len(items) == 2
    assert [sorted(item.inputs) for item in items] == [["a", "b"], ["a", "b"]]
    assert items[0].inputs["a"].tolist() == [1.0, 2.0, 3.0]
    assert items[1].inputs["a"].tolist() == [4.0, 5.0, 6.0]
    assert items[0].inputs["a"].dtype == np.float32
    assert items[0].inputs["b"].shape == () and items[0].inputs["b"].dtype == np.int64
    assert [int(item.inputs["b"]) for item in items] == [10, 20]


def test_one_item_batch(vector: InputDecoder) -> None:
    [item] = vector.items_from_tensors([_tensor("x", "FP32", _fp32(1, 4))])
    assert item.inputs["x"].shape == (4,)
    assert item.inputs["x"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_unbatched_model_gets_the_whole_tensor_as_one_item() -> None:
    decoder = InputDecoder([_spec("x", "FP32", [2, 3])], batched=False)
    items = decoder.items_from_tensors([_tensor("x", "FP32", _fp32(2, 3))])
    assert len(items) == 1
    assert items[0].inputs["x"].shape == (2, 3)
    assert items[0].inputs["x"].tolist() == _fp32(2, 3).tolist()


def test_unbatched_model_checks_the_whole_shape() -> None:
    decoder = InputDecoder([_spec("x", "FP32", [2, 3])], batched=False)
    message = _refused(decoder.items_from_tensors, [_tensor("x", "FP32", _fp32(3, 2))])
    assert message == "input 'x' has shape [3, 2] but the model expects [2, 3]"


def test_tensor_datatype_must_match(vector: InputDecoder) -> None:
    wrong = _tensor("x", "FP64", np.zeros((1, 4)))
    message = _refused(vector.items_from_tensors, [wrong])
    assert message == "input 'x' has datatype FP64 but the model expects FP32"


def test_tensor_names_missing_and_unknown(pair: InputDecoder) -> None:
    a = _tensor("a", "FP32", _fp32(1, 2))
    c = _tensor("c", "FP32", _fp32(1))
    assert _refused(pair.items_from_tensors, [a]) == (
        "missing input(s) b; this model's inputs are a, b"
    )
    assert _refused(pair.items_from_tensors, [a, c]) == (
        "missing input(s) b; unknown input(s) c; this model's inputs are a, b"
    )


def test_tensor_given_twice(vector: InputDecoder) -> None:
    x = _tensor("x", "FP32", _fp32(1, 4))
    assert _refused(vector.items_from_tensors, [x, x]) == "input 'x' is given twice"


def test_per_item_shape_is_checked_after_the_batch_dimension(vector: InputDecoder) -> None:
    message = _refused(vector.items_from_tensors, [_tensor("x", "FP32", _fp32(3, 5))])
    assert message == (
        "input 'x' has per item shape [5] but the model expects per item [4] "
        "after the batch dimension"
    )


def test_dynamic_dims_are_described_as_any() -> None:
    decoder = InputDecoder([_spec("x", "FP32", [-1, 3])], batched=True)
    message = _refused(decoder.items_from_tensors, [_tensor("x", "FP32", _fp32(2, 5))])
    assert message.endswith("but the model expects per item [any, 3] after the batch dimension")


def test_batch_sizes_must_agree(pair: InputDecoder) -> None:
    a = _tensor("a", "FP32", _fp32(2, 3))
    b = _tensor("b", "INT64", np.arange(3, dtype=np.int64))
    assert _refused(pair.items_from_tensors, [a, b]) == (
        "inputs disagree on the batch size: {'a': 2, 'b': 3}"
    )


def test_every_input_needs_a_batch_dimension(pair: InputDecoder) -> None:
    a = _tensor("a", "FP32", _fp32(1, 3))
    b = _tensor("b", "INT64", np.array(5, dtype=np.int64))
    message = _refused(pair.items_from_tensors, [a, b])
    assert message.startswith("every input needs a leading batch dimension")


def test_empty_batch_is_refused(vector: InputDecoder) -> None:
    message = _refused(vector.items_from_tensors, [_tensor("x", "FP32", _fp32(0, 4))])
    assert message == "the batch is empty (batch dimension 0); send at least one item"


def test_scalar_per_item_fits_a_one_element_input() -> None:
    decoder = InputDecoder([_spec("x", "FP32", [1])], batched=True)
    items = decoder.items_from_tensors([_tensor("x", "FP32", np.array([1, 2, 5], np.float32))])
    assert [item.inputs["x"].shape for item in items] == [(1,), (1,), (1,)]
    assert [item.inputs["x"].tolist() for item in items] == [[1.0], [2.0], [5.0]]


def test_scalar_per_item_does_not_fit_a_wider_input() -> None:
    decoder = InputDecoder([_spec("x", "FP32", [2])], batched=True)
    message = _refused(decoder.items_from_tensors, [_tensor("x", "FP32", _fp32(3))])
    assert message == (
        "input 'x' has per item shape [] but the model expects per item [2] "
        "after the batch dimension"
    )


def test_bytes_tensor_is_split_per_item(text: InputDecoder) -> None:
    data = np.array([[b"one"], [b"two"]], dtype=np.object_)
    items = text.items_from_tensors([_tensor("t", "BYTES", data)])
    assert [item.inputs["t"].tolist() for item in items] == [[b"one"], [b"two"]]
    assert items[0].inputs["t"].dtype == np.object_


# --- V1 instances → items -----------------------------------------------------------------------


def test_instance_keyed_by_names_converts_to_each_datatype(pair: InputDecoder) -> None:
    item = pair.item_from_instance({"a": [1, 2.5], "b": 3})
    assert sorted(item.inputs) == ["a", "b"]
    assert item.inputs["a"].dtype == np.float32 and item.inputs["a"].tolist() == [1.0, 2.5]
    assert (
        item.inputs["b"].dtype == np.int64
        and item.inputs["b"].shape == ()
        and int(item.inputs["b"]) == 3
    )


def test_bare_instance_for_a_single_input(vector: InputDecoder) -> None:
    item = vector.item_from_instance([1, 2, 3, 4])
    assert list(item.inputs) == ["x"]
    assert item.inputs["x"].dtype == np.float32
    assert item.inputs["x"].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_bare_instance_for_several_inputs_is_refused(pair: InputDecoder) -> None:
    assert _refused(pair.item_from_instance, [1, 2]) == (
        "this model has 2 inputs (a, b); send each instance as an object keyed by them"
    )


def test_instance_names_missing_and_unknown(pair: InputDecoder) -> None:
    assert _refused(pair.item_from_instance, {"a": [1.0], "c": 2}) == (
        "missing input(s) b; unknown input(s) c; this model's inputs are a, b"
    )


def test_instance_shape_is_checked(vector: InputDecoder) -> None:
    assert _refused(vector.item_from_instance, [1, 2, 3]) == (
        "input 'x' has per item shape [3] but the model expects per item [4] "
        "after the batch dimension"
    )


def test_instance_for_an_unbatched_model_has_the_whole_shape() -> None:
    decoder = InputDecoder([_spec("x", "FP32", [2, 2])], batched=False)
    item = decoder.item_from_instance([[1, 2], [3, 4]])
    assert item.inputs["x"].shape == (2, 2)
    assert _refused(decoder.item_from_instance, [1, 2, 3, 4]) == (
        "input 'x' has shape [4] but the model expects [2, 2]"
    )


def test_scalar_instance_fits_a_one_element_input() -> None:
    decoder = InputDecoder([_spec("x", "FP64", [1])], batched=True)
    item = decoder.item_from_instance(2.5)
    assert item.inputs["x"].shape == (1,)
    assert item.inputs["x"].dtype == np.float64
    assert item.inputs["x"].tolist() == [2.5]


def test_bytes_from_a_string(text: InputDecoder) -> None:
    item = text.item_from_instance("café")
    assert item.inputs["t"].dtype == np.object_
    assert item.inputs["t"].shape == (1,)
    assert item.inputs["t"][0] == "café".encode()


def test_bytes_from_b64_bare_and_keyed(text: InputDecoder) -> None:
    raw = bytes([0, 255, 1, 254])
    encoded = base64.b64encode(raw).decode()
    for item in (
        text.item_from_instance({"b64": encoded}),
        text.item_from_instance({"t": {"b64": encoded}}),
    ):
        assert item.inputs["t"].shape == (1,)
        assert item.inputs["t"][0] == raw


def test_bytes_list_of_strings_and_b64() -> None:
    decoder = InputDecoder([_spec("t", "BYTES", [-1])], batched=True)
    item = decoder.item_from_instance(["ab", {"b64": base64.b64encode(b"\x00\x01").decode()}])
    assert item.inputs["t"].dtype == np.object_
    assert item.inputs["t"].tolist() == [b"ab", b"\x00\x01"]


def test_bytes_bad_base64(text: InputDecoder) -> None:
    message = _refused(text.item_from_instance, {"b64": "not base64!!"})
    assert message.startswith("input 't' is not valid base64")


def test_bytes_object_with_other_keys(text: InputDecoder) -> None:
    message = _refused(text.item_from_instance, {"t": {"data": "x"}})
    assert message == 'input \'t\': binary data goes in as {"b64": "<base64 string>"}'


def test_bytes_from_a_number_is_refused(text: InputDecoder) -> None:
    message = _refused(text.item_from_instance, 42)
    assert message == 'input \'t\' takes text or {"b64": "<base64>"} for binary data; got 42'


def test_bytes_ragged_nested_list_is_refused() -> None:
    # [["a", "b"], ["c"]] has no rectangular shape; it must not become an object array of lists
    decoder = InputDecoder([_spec("t", "BYTES", [-1])], batched=True)
    message = _refused(decoder.item_from_instance, [["a", "b"], ["c"]])
    assert "ragged" in message


def test_numbers_are_converted_to_the_input_datatype() -> None:
    decoder = InputDecoder(
        [
            _spec("i8", "INT8", [2]),
            _spec("u16", "UINT16", [1]),
            _spec("f16", "FP16", [1]),
            _spec("flag", "BOOL", [1]),
        ],
        batched=True,
    )
    item = decoder.item_from_instance({"i8": [-128, 127], "u16": 65535, "f16": 0.5, "flag": True})
    assert item.inputs["i8"].dtype == np.int8 and item.inputs["i8"].tolist() == [-128, 127]
    assert item.inputs["u16"].dtype == np.uint16 and item.inputs["u16"].tolist() == [65535]
    assert item.inputs["f16"].dtype == np.float16 and item.inputs["f16"].tolist() == [0.5]
    assert item.inputs["flag"].dtype == np.bool_ and item.inputs["flag"].tolist() == [True]


def test_whole_floats_are_accepted_for_integer_inputs() -> None:
    decoder = InputDecoder([_spec("n", "INT64", [2])], batched=True)
    item = decoder.item_from_instance([2.0, -3.0])
    assert item.inputs["n"].dtype == np.int64
    assert item.inputs["n"].tolist() == [2, -3]


def test_out_of_range_integer_is_refused() -> None:
    decoder = InputDecoder([_spec("n", "INT8", [1])], batched=True)
    assert _refused(decoder.item_from_instance, 300) == (
        "input 'n' takes INT8 values in [-128, 127]; got 300..300"
    )
    assert "got -129..-129" in _refused(decoder.item_from_instance, -129)


def test_negative_into_unsigned_is_refused() -> None:
    decoder = InputDecoder([_spec("n", "UINT8", [2])], batched=True)
    assert _refused(decoder.item_from_instance, [-1, 5]) == (
        "input 'n' takes UINT8 values in [0, 255]; got -1..5"
    )


def test_fraction_into_integer_is_refused() -> None:
    decoder = InputDecoder([_spec("n", "INT64", [1])], batched=True)
    assert _refused(decoder.item_from_instance, 1.5) == "input 'n' takes whole numbers (INT64)"


def test_nan_into_integer_is_refused() -> None:
    decoder = InputDecoder([_spec("n", "INT32", [1])], batched=True)
    assert _refused(decoder.item_from_instance, float("nan")) == (
        "input 'n' takes whole numbers (INT32)"
    )


def test_float_just_past_int64_range_is_refused() -> None:
    # 2**63 as a float is whole but one past INT64's maximum; it must not wrap to -2**63
    decoder = InputDecoder([_spec("n", "INT64", [1])], batched=True)
    message = _refused(decoder.item_from_instance, 9223372036854775808.0)
    assert message.startswith("input 'n' takes INT64 values in [")


def test_ragged_list_is_refused(pair: InputDecoder) -> None:
    assert _refused(pair.item_from_instance, {"a": [[1, 2], [3]], "b": 1}) == (
        "input 'a' is a ragged list; every row must have the same length"
    )


@pytest.mark.parametrize("value", [["1", "2", "3", "4"], [1, "a", 3, 4]])
def test_strings_in_numeric_input_are_refused(vector: InputDecoder, value: list[Any]) -> None:
    message = _refused(vector.item_from_instance, value)
    assert message == f"input 'x' must be FP32 numbers; got {value!r}"


def test_null_in_numeric_input_is_refused(vector: InputDecoder) -> None:
    message = _refused(vector.item_from_instance, [1, None, 3, 4])
    assert message == "input 'x' must be FP32 numbers; got [1, None, 3, 4]"


def test_object_for_numeric_input_is_refused(pair: InputDecoder) -> None:
    message = _refused(pair.item_from_instance, {"a": {"value": 1}, "b": 1})
    assert message == "input 'a' takes FP32 numbers, not an object"


def test_b64_object_for_a_numeric_single_input_is_refused(vector: InputDecoder) -> None:
    message = _refused(vector.item_from_instance, {"b64": "AAAA"})
    assert message == "input 'x' takes FP32 numbers, not an object"


def test_long_values_are_cut_in_the_message(vector: InputDecoder) -> None:
    message = _refused(vector.item_from_instance, ["x" * 500, "y", "z", "w"])
    assert len(message) < 160


@pytest.mark.parametrize("depth", [34, 990])
def test_text_nested_deeper_than_a_tensor_can_be_is_a_400(text: InputDecoder, depth: int) -> None:
    nested: Any = "x"
    for _ in range(depth):
        nested = [nested]
    message = _refused(text.item_from_instance, nested)
    assert "nested" in message and "at most 32 dimensions" in message
