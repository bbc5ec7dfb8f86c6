"""The V2 request and response bodies, checked against the official tritonclient's own encoder
and decoder."""

from __future__ import annotations

import base64
import contextlib
import copy
import random
import struct
from typing import Any

import numpy as np
import orjson
import pytest
from tritonclient.http import (
    InferenceServerClient,
    InferInput,
    InferRequestedOutput,
    InferResult,
)
from tritonclient.utils import np_to_triton_dtype

from inferd.codecs import (
    HEADER_CONTENT_LENGTH,
    InferRequest,
    InferResponse,
    InferTensor,
    RequestedOutput,
    decode_infer_request,
    encode_infer_response,
    select_outputs,
    v2,
)
from inferd.datatypes import numpy_dtype
from inferd.errors import BadRequestError

PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"


def triton_body(
    arrays: dict[str, tuple[np.ndarray, bool]],
    outputs: list[InferRequestedOutput] | None = None,
    **kwargs: Any,
) -> tuple[bytes, int | None]:
    """A request body exactly as tritonclient would send it: {name: (array, binary_data)}."""
    inputs = []
    for name, (arr, binary) in arrays.items():
        inp = InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
        inp.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(inp)
    body, json_length = InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, **kwargs
    )
    return bytes(body), json_length


def tensor(name: str, arr: np.ndarray, **params: Any) -> InferTensor:
    datatype = np_to_triton_dtype(arr.dtype)
    return InferTensor(name, datatype, list(arr.shape), arr, dict(params))


def parse_response(body: bytes, json_length: int | None) -> InferResult:
    return InferResult.from_response_body(body, verbose=False, header_length=json_length)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    if want.dtype == object:
        assert got.tolist() == want.tolist()
    else:
        np.testing.assert_array_equal(got, want)


RNG = np.random.default_rng(0)
NUMERIC: dict[str, np.ndarray] = {
    "FP32": RNG.standard_normal((2, 3)).astype(np.float32),
    "FP64": RNG.standard_normal((4,)),
    "FP16": RNG.standard_normal((3, 2, 2)).astype(np.float16),
    "INT64": np.array([[-(2**62), 0, 2**62 + 5]], dtype=np.int64),
    "INT32": np.array([-(2**31), 2**31 - 1], dtype=np.int32),
    "INT8": np.array([[-128], [127]], dtype=np.int8),
    "UINT8": np.arange(0, 256, 17, dtype=np.uint8),
    "UINT64": np.array([0, 2**64 - 1], dtype=np.uint64),
    "BOOL": np.array([[True, False, True], [False, False, True]]),
}


# --- requests built by tritonclient ----------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", list(NUMERIC))
def test_decode_numeric_from_tritonclient(datatype: str, binary: bool) -> None:
    want = NUMERIC[datatype]
    body, json_length = triton_body({"x": (want, binary)})
    assert (json_length is not None) == binary

    request = decode_infer_request(body, json_length)

    (x,) = request.inputs
    assert (x.name, x.datatype, x.shape) == ("x", datatype, list(want.shape))
    assert_same(x.data, want)
    assert x.parameters == {}  # binary_data_size is consumed
    assert x.data.flags.writeable and x.data.flags.aligned


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_decode_bytes_from_tritonclient(binary: bool) -> None:
    want = np.array([["héllo".encode(), b""], [b"a b", b"\x00end"]], dtype=object)
    body, json_length = triton_body({"text": (want, binary)})
    (text,) = decode_infer_request(body, json_length).inputs
    assert text.datatype == "BYTES"
    assert_same(text.data, want)
    assert all(type(v) is bytes for v in text.data.ravel())


def test_decode_binary_bytes_keeps_arbitrary_bytes() -> None:
    want = np.array([PNG_HEADER, bytes(range(256)), b""], dtype=object)
    body, json_length = triton_body({"image": (want, True)})
    (image,) = decode_infer_request(body, json_length).inputs
    assert_same(image.data, want)


def test_decode_mixed_json_and_binary_inputs_in_order() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([7, 8], dtype=np.int64)
    c = np.array([PNG_HEADER, b"x"], dtype=object)
    d = np.array([True, False])
    body, json_length = triton_body(
        {"a": (a, True), "b": (b, False), "c": (c, True), "d": (d, True)}
    )
    request = decode_infer_request(body, json_length)
    assert [t.name for t in request.inputs] == ["a", "b", "c", "d"]
    wanted: list[np.ndarray] = [a, b, c, d]
    for got, want in zip(request.inputs, wanted, strict=True):
        assert_same(got.data, want)


def test_decode_request_id_parameters_and_outputs() -> None:
    outputs = [InferRequestedOutput("probs", binary_data=False), InferRequestedOutput("label")]
    body, json_length = triton_body(
        {"x": (np.ones(2, np.float32), False)},
        outputs=outputs,
        request_id="req-7",
        priority=3,
        parameters={"temperature": 0.5},
    )
    request = decode_infer_request(body, json_length)
    assert request.id == "req-7"
    assert request.parameters == {"priority": 3, "temperature": 0.5}
    assert request.outputs == [
        RequestedOutput("probs", {"binary_data": False}),
        RequestedOutput("label", {"binary_data": True}),
    ]


def test_decode_without_outputs_asks_for_all_binary() -> None:
    body, json_length = triton_body({"x": (np.ones(1, np.float32), True)})
    request = decode_infer_request(body, json_length)
    assert request.outputs is None
    assert request.parameters == {"binary_data_output": True}


def test_decode_nested_json_data_is_row_major() -> None:
    body = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "INT32", "shape": [3, 2], "data": [[1, 2, 3], [4, 5, 6]]}
            ]
        }
    )
    (x,) = decode_infer_request(body).inputs
    assert_same(x.data, np.array([[1, 2], [3, 4], [5, 6]], dtype=np.int32))


def test_decode_nested_bytes_and_base64_content_type() -> None:
    encoded = [base64.b64encode(PNG_HEADER).decode(), base64.b64encode(b"ok").decode()]
    body = orjson.dumps(
        {
            "inputs": [
                {"name": "s", "datatype": "BYTES", "shape": [2], "data": [["a"], ["b"]]},
                {
                    "name": "img",
                    "datatype": "BYTES",
                    "shape": [2, 1],
                    "data": encoded,
                    "parameters": {"content_type": "base64"},
                },
            ]
        }
    )
    s, img = decode_infer_request(body).inputs
    assert s.data.tolist() == [b"a", b"b"]
    assert img.data.tolist() == [[PNG_HEADER], [b"ok"]]
    assert img.parameters == {"content_type": "base64"}


@pytest.mark.parametrize("datatype", ["BYTES", "FP32"])
def test_decode_deeply_nested_data(datatype: str) -> None:
    """JSON may nest deeper than Python's recursion limit; that must not crash the decoder."""
    leaf = b'"a"' if datatype == "BYTES" else b"1"
    data = b"[" * 1000 + leaf + b", [" + leaf + b"]" + b"]" * 1000
    body = b'{"inputs": [{"name": "s", "datatype": "%s", "shape": [2], "data": %s}]}' % (
        datatype.encode(),
        data,
    )
    if datatype == "BYTES":
        assert decode_infer_request(body).inputs[0].data.tolist() == [b"a", b"a"]
    else:
        with pytest.raises(BadRequestError, match="rectangular"):
            decode_infer_request(body)


def test_decode_ints_into_float_and_integral_floats_into_int() -> None:
    body = orjson.dumps(
        {
            "inputs": [
                {"name": "f", "datatype": "FP32", "shape": [3], "data": [1, 2.5, True]},
                {"name": "i", "datatype": "INT16", "shape": [2], "data": [3.0, -4.0]},
            ]
        }
    )
    f, i = decode_infer_request(body).inputs
    assert_same(f.data, np.array([1, 2.5, 1], dtype=np.float32))
    assert_same(i.data, np.array([3, -4], dtype=np.int16))


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("dtype", [np.float32, np.bool_, np.object_])
def test_decode_empty_tensor(dtype: type, binary: bool) -> None:
    want: np.ndarray = np.empty((0, 3), dtype=dtype)
    body, json_length = triton_body({"x": (want, binary)})
    (x,) = decode_infer_request(body, json_length).inputs
    assert_same(x.data, want)


def test_header_length_equal_to_body_without_binary_is_fine() -> None:
    body, _ = triton_body({"x": (np.ones(2, np.float32), False)})
    (x,) = decode_infer_request(body, len(body)).inputs
    assert x.data.tolist() == [1.0, 1.0]


# --- the fast path for flat lists of numbers -------------------------------------------------

BIG = 2**53 + 1  # the first integer a float64 cannot hold
FLAT_CASES: list[tuple[str, list[Any]]] = [
    ("FP32", [0.5, 1.25, -3.0, 1e-40]),
    ("FP32", [0.5, 1, True, False]),  # a float first: numpy converts all as Python floats
    ("FP32", [1, 2.5, 3]),  # an int first: the general path
    ("FP32", [1.5, 1e39, -1e39]),  # too large for FP32: inf, as in C
    ("FP32", [1.5, BIG, -BIG, 2**63]),
    ("FP32", [BIG, -BIG, 3]),  # ints only: numpy makes int64, which rounds once
    ("FP64", [0.1, 2**60 + 1, -(2**63), 2**64 - 1]),
    ("FP64", [1.5, "2", 3.0]),
    ("FP64", [1.5, None, 3.0]),
    ("FP64", [1.5, [2.0], 3.0]),
    ("FP64", [1.5, {"a": 1}, 3.0]),
    ("FP16", [1.5, 70000.0]),
    ("INT8", [-128, 127, True, 0]),
    ("INT8", [1, 128, 0, 0]),
    ("INT16", [1, 2.0, 3, 4]),  # whole floats go the general way and are accepted
    ("INT16", [1, 2.5, 3, 4]),
    ("INT32", [-(2**31), 2**31 - 1]),
    ("INT64", [2**63 - 1, -(2**63)]),
    ("INT64", [1, 2**63]),
    ("INT64", [1, "2"]),
    ("UINT8", [0, 255, 3]),
    ("UINT8", [0, -1, 3]),
    ("UINT16", [0, 65536]),
    ("UINT32", [4294967295, 0]),
    ("UINT64", [0, 2**64 - 1]),
    ("UINT64", [5, -5]),
    ("BOOL", [True, False]),
]


def decode_or_error(body: bytes) -> np.ndarray | str:
    try:
        return decode_infer_request(body).inputs[0].data
    except BadRequestError as error:
        return error.message


@pytest.mark.parametrize(("datatype", "data"), FLAT_CASES)
def test_flat_numbers_fast_path_matches_the_general_path(
    datatype: str, data: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = body_of({"name": "x", "datatype": datatype, "shape": [1, len(data)], "data": data})
    fast = decode_or_error(body)
    monkeypatch.setattr(v2, "_ARRAY_CODES", {})  # every list takes the general path
    general = decode_or_error(body)
    if isinstance(general, str):
        assert fast == general
    else:
        assert isinstance(fast, np.ndarray)
        assert_same(fast, general)
        assert fast.flags.writeable and fast.flags.aligned and fast.flags.c_contiguous


def test_flat_numbers_fast_path_is_taken_for_json_floats_and_ints() -> None:
    taken: list[tuple[str, list[Any]]] = [("FP32", [0.5, 2]), ("INT64", [3, 4])]
    for datatype, data in taken:
        got = v2._flat_numbers(datatype, data, 2)
        assert got is not None and got.dtype == numpy_dtype(datatype)
    assert v2._flat_numbers("FP32", [1, 0.5], 2) is None  # an int first
    assert v2._flat_numbers("FP32", [0.5], 2) is None  # a count the general path reports


# --- responses read by tritonclient ----------------------------------------------------------

OUTPUTS: dict[str, np.ndarray] = {
    "probs": np.array([[0.1, 0.9], [0.75, 0.25]], dtype=np.float32),
    "half": np.array([1.5, -2.0], dtype=np.float16),
    "label": np.array([b"cat", "dög".encode()], dtype=object),
    "mask": np.array([[True], [False]]),
    "count": np.array([3], dtype=np.int64),
}


def response() -> InferResponse:
    outputs = [tensor(name, arr) for name, arr in OUTPUTS.items()]
    return InferResponse("model", outputs, model_version="2", id="req-1")


def request_for(outputs: list[RequestedOutput] | None, **params: Any) -> InferRequest:
    return InferRequest(inputs=[], outputs=outputs, parameters=params)


def test_encode_without_request_is_plain_json() -> None:
    body, json_length = encode_infer_response(response())
    assert json_length is None
    doc = orjson.loads(body)
    assert (doc["model_name"], doc["model_version"], doc["id"]) == ("model", "2", "req-1")
    assert "parameters" not in doc
    assert doc["outputs"][0] == {
        "name": "probs",
        "datatype": "FP32",
        "shape": [2, 2],
        "data": [0.1, 0.9, 0.75, 0.25],  # shortest float32 repr, read back exactly
    }
    result = parse_response(body, json_length)
    for name, want in OUTPUTS.items():
        got = result.as_numpy(name)
        if want.dtype == object:  # tritonclient returns JSON BYTES as str
            assert got.tolist() == [v.decode() for v in want]
        else:
            assert_same(got, want)


@pytest.mark.parametrize(
    "req",
    [
        request_for(None, binary_data_output=True),
        request_for([RequestedOutput(n, {"binary_data": True}) for n in OUTPUTS]),
    ],
    ids=["binary_data_output", "per-output"],
)
def test_encode_binary_outputs_read_by_tritonclient(req: InferRequest) -> None:
    body, json_length = encode_infer_response(response(), req)
    assert json_length is not None
    header = orjson.loads(body[:json_length])
    assert all("data" not in o for o in header["outputs"])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 16}
    result = parse_response(body, json_length)
    for name, want in OUTPUTS.items():
        assert_same(result.as_numpy(name), want)


def test_encode_mixed_binary_and_json_outputs() -> None:
    req = request_for(
        [
            RequestedOutput("label", {"binary_data": False}),
            RequestedOutput("probs"),
            RequestedOutput("mask"),
        ],
        binary_data_output=True,
    )
    body, json_length = encode_infer_response(response(), req)
    assert json_length is not None
    outputs = orjson.loads(body[:json_length])["outputs"]
    assert [o["name"] for o in outputs] == ["label", "probs", "mask"]
    assert outputs[0]["data"] == ["cat", "dög"]
    assert "data" not in outputs[1] and "data" not in outputs[2]
    result = parse_response(body, json_length)
    assert_same(result.as_numpy("probs"), OUTPUTS["probs"])
    assert_same(result.as_numpy("mask"), OUTPUTS["mask"])
    assert result.as_numpy("label").tolist() == ["cat", "dög"]
    assert result.as_numpy("half") is None  # not requested


def test_encode_non_utf8_bytes_in_json_uses_base64() -> None:
    out = tensor("img", np.array([PNG_HEADER, b"ok"], dtype=object), note="x")
    body, json_length = encode_infer_response(InferResponse("m", [out]))
    assert json_length is None
    (doc,) = orjson.loads(body)["outputs"]
    assert doc["parameters"] == {"note": "x", "content_type": "base64"}
    assert [base64.b64decode(v) for v in doc["data"]] == [PNG_HEADER, b"ok"]
    assert out.parameters == {"note": "x"}  # the response's tensor is left alone


def test_encode_binary_bytes_accepts_str_elements() -> None:
    out = InferTensor("s", "BYTES", [2], np.array(["ä", "b"]))
    body, json_length = encode_infer_response(
        InferResponse("m", [out]), request_for(None, binary_data_output=True)
    )
    assert parse_response(body, json_length).as_numpy("s").tolist() == ["ä".encode(), b"b"]


def test_encode_converts_data_to_the_declared_datatype() -> None:
    out = InferTensor("y", "FP16", [2], np.array([0.5, 2.0]))  # float64 data, FP16 declared
    body, json_length = encode_infer_response(
        InferResponse("m", [out]), request_for(None, binary_data_output=True)
    )
    assert_same(parse_response(body, json_length).as_numpy("y"), np.array([0.5, 2], np.float16))


def test_encode_empty_binary_output_and_response_parameters() -> None:
    res = InferResponse("m", [tensor("e", np.empty((0, 2), np.float32))], parameters={"k": 1})
    body, json_length = encode_infer_response(res, request_for(None, binary_data_output=True))
    assert json_length == len(body)
    assert orjson.loads(body)["parameters"] == {"k": 1}
    assert parse_response(body, json_length).as_numpy("e").shape == (0, 2)


def test_round_trip_through_tritonclient_both_ways() -> None:
    image = np.array([PNG_HEADER], dtype=object)
    body, json_length = triton_body(
        {"image": (image, True)},
        outputs=[InferRequestedOutput("label", binary_data=False), InferRequestedOutput("probs")],
    )
    request = decode_infer_request(body, json_length)
    assert request.inputs[0].data.tolist() == [PNG_HEADER]
    body, json_length = encode_infer_response(response(), request)
    result = parse_response(body, json_length)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label", "probs"]
    assert_same(result.as_numpy("probs"), OUTPUTS["probs"])
    assert result.as_numpy("label").tolist() == ["cat", "dög"]


def test_select_outputs_honours_names_and_order() -> None:
    outputs = response().outputs
    req = request_for([RequestedOutput("mask"), RequestedOutput("probs")])
    assert [t.name for t in select_outputs(outputs, req)] == ["mask", "probs"]
    assert [t.name for t in select_outputs(outputs, None)] == list(OUTPUTS)
    assert [t.name for t in select_outputs(outputs, request_for(None))] == list(OUTPUTS)
    assert [t.name for t in select_outputs(outputs, request_for([]))] == list(OUTPUTS)


def test_select_outputs_rejects_unknown_names() -> None:
    with pytest.raises(BadRequestError) as info:
        select_outputs(response().outputs, request_for([RequestedOutput("scores")]))
    assert '"scores"' in info.value.message
    assert '"probs"' in info.value.message and '"count"' in info.value.message
    with pytest.raises(BadRequestError):
        encode_infer_response(response(), request_for([RequestedOutput("scores")]))


# --- bad requests -----------------------------------------------------------------------------


def body_of(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def fp32(data: Any, shape: Any = (2, 3), **extra: Any) -> dict[str, Any]:
    return {"name": "x", "datatype": "FP32", "shape": list(shape), "data": data, **extra}


GOOD = fp32([1, 2, 3, 4, 5, 6])
F32_BIN = np.arange(6, dtype=np.float32).tobytes()


def binary(datatype: str, shape: list[int], size: Any, payload: bytes) -> tuple[bytes, int]:
    header = body_of(
        {
            "name": "b",
            "datatype": datatype,
            "shape": shape,
            "parameters": {"binary_data_size": size},
        }
    )
    return header + payload, len(header)


def bytes_elements(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


BAD_REQUESTS: dict[str, tuple[bytes, int | None, list[str]]] = {
    "malformed json": (b'{"inputs": [', None, ["not valid JSON"]),
    "not an object": (b"[1, 2]", None, ["JSON object", "inputs"]),
    "no inputs": (b'{"outputs": []}', None, ['"inputs"']),
    "empty inputs": (body_of(), None, ['"inputs"']),
    "input not object": (b'{"inputs": [3]}', None, ["inputs[0]", "object"]),
    "missing name": (
        body_of({"datatype": "FP32", "shape": [1], "data": [1]}),
        None,
        ["inputs[0]", '"name"'],
    ),
    "missing datatype": (
        body_of({"name": "x", "shape": [1], "data": [1]}),
        None,
        ['input "x"', '"datatype"'],
    ),
    "missing shape": (
        body_of({"name": "x", "datatype": "FP32", "data": [1]}),
        None,
        ['input "x"', '"shape"'],
    ),
    "unknown datatype": (
        body_of({**GOOD, "datatype": "FLOAT"}),
        None,
        ['input "x"', "'FLOAT'", "FP32"],
    ),
    "negative shape": (body_of(fp32([1], [-1])), None, ["shape", "non-negative"]),
    "float shape": (body_of(fp32([1], [1.0])), None, ["shape", "integers"]),
    "bool shape": (body_of(fp32([1], [True])), None, ["shape", "integers"]),
    "shape not list": (body_of({**GOOD, "shape": 6}), None, ["shape", "list"]),
    "count mismatch": (
        body_of(fp32([1, 2, 3, 4, 5])),
        None,
        ['input "x": shape [2, 3] needs 6 values but 5 were given'],
    ),
    "nested count mismatch": (body_of(fp32([[1, 2], [3, 4]])), None, ["needs 6 values but 4"]),
    "string in FP32": (
        body_of(fp32([1, 2, "three", 4, 5, 6])),
        None,
        ['input "x"', "numbers", "'three'"],
    ),
    "null in FP32": (body_of(fp32([1, 2, None, 4, 5, 6])), None, ["numbers", "None"]),
    "ragged nested": (body_of(fp32([[1, 2, 3], [4, 5]])), None, ["rectangular"]),
    "data not list": (body_of(fp32("123456")), None, ['"data"', "list"]),
    "no data": (
        body_of({"name": "x", "datatype": "FP32", "shape": [1]}),
        None,
        ['input "x"', '"data"'],
    ),
    "shared memory": (
        body_of(
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [1],
                "parameters": {"shared_memory_region": "r"},
            }
        ),
        None,
        ["shared memory"],
    ),
    "fraction in INT32": (
        body_of({**GOOD, "datatype": "INT32", "data": [1, 2, 3, 4, 5, 6.5]}),
        None,
        ["INT32", "whole numbers", "got 6.5"],
    ),
    "out of range UINT8": (
        body_of({**GOOD, "datatype": "UINT8", "data": [1, 2, 3, 4, 5, 300]}),
        None,
        ["UINT8", "[0, 255], got 300"],
    ),
    "negative UINT32": (
        body_of({**GOOD, "datatype": "UINT32", "data": [-1, 2, 3, 4, 5, 6]}),
        None,
        ["UINT32", "got -1"],
    ),
    "too big for INT64": (
        body_of({**GOOD, "datatype": "INT64", "data": [2**63, 2, 3, 4, 5, 6]}),
        None,
        ["INT64", "whole numbers in [-9223372036854775808, 9223372036854775807]"],
    ),
    "int in BOOL": (
        body_of({**GOOD, "datatype": "BOOL", "data": [1, 0, 1, 0, 1, 0]}),
        None,
        ["BOOL", "true or false"],
    ),
    "number in BYTES": (
        body_of({"name": "s", "datatype": "BYTES", "shape": [2], "data": ["a", 2]}),
        None,
        ['input "s"', "strings", "2"],
    ),
    "null in BYTES": (
        body_of({"name": "s", "datatype": "BYTES", "shape": [2], "data": ["a", None]}),
        None,
        ["strings", "None"],
    ),
    "bad base64": (
        body_of(
            {
                "name": "s",
                "datatype": "BYTES",
                "shape": [1],
                "data": ["%%%"],
                "parameters": {"content_type": "base64"},
            }
        ),
        None,
        ['input "s"', "base64"],
    ),
    "duplicate names": (body_of(GOOD, GOOD), None, ['input "x"', "twice"]),
    "id not string": (body_of(GOOD, id=5), None, ['"id"', "string"]),
    "parameters not object": (body_of(GOOD, parameters=[1]), None, ['"parameters"', "object"]),
    "input parameters not object": (
        body_of({**GOOD, "parameters": "p"}),
        None,
        ['input "x"', '"parameters"'],
    ),
    "binary_data_output not bool": (
        body_of(GOOD, parameters={"binary_data_output": "yes"}),
        None,
        ["binary_data_output", "true or false"],
    ),
    "outputs not list": (body_of(GOOD, outputs={"name": "y"}), None, ['"outputs"', "list"]),
    "output without name": (
        body_of(GOOD, outputs=[{"parameters": {}}]),
        None,
        ["outputs[0]", '"name"'],
    ),
    "output binary_data not bool": (
        body_of(GOOD, outputs=[{"name": "y", "parameters": {"binary_data": 1}}]),
        None,
        ['output "y"', "binary_data"],
    ),
    "binary size mismatch": (
        *binary("FP32", [2, 3], 20, F32_BIN[:20]),
        ['input "b"', "needs 24 bytes", "20"],
    ),
    "body too short": (
        *binary("FP32", [2, 3], 24, F32_BIN[:20]),
        ["binary_data_size is 24 but 20 bytes are left"],
    ),
    "extra trailing bytes": (
        *binary("FP32", [2, 3], 24, F32_BIN + b"xx"),
        ["2 bytes of binary data are left over", "binary_data_size"],
    ),
    "trailing bytes, no binary input": (
        body_of(GOOD) + b"junk",
        len(body_of(GOOD)),
        ["4 bytes", "left over"],
    ),
    "header length too big": (body_of(GOOD), 10_000, [HEADER_CONTENT_LENGTH, "10000"]),
    "header length negative": (body_of(GOOD), -1, [HEADER_CONTENT_LENGTH]),
    "binary without header": (
        binary("FP32", [2, 3], 24, b"")[0],
        None,
        ['input "b"', HEADER_CONTENT_LENGTH],
    ),
    "binary payload without header": (
        binary("FP32", [2, 3], 24, F32_BIN)[0],
        None,
        ["not valid JSON", HEADER_CONTENT_LENGTH],
    ),
    "binary size not int": (
        *binary("FP32", [2, 3], "24", F32_BIN),
        ["binary_data_size", "integer"],
    ),
    "binary and data": (
        body_of({**GOOD, "parameters": {"binary_data_size": 24}}) + F32_BIN,
        len(body_of({**GOOD, "parameters": {"binary_data_size": 24}})),
        ["both", '"data"'],
    ),
    "BYTES binary cut in prefix": (
        *binary("BYTES", [2], 7, bytes_elements(b"ab") + b"\x01"),
        ['input "b"', "length prefix"],
    ),
    "BYTES binary element overruns": (
        *binary("BYTES", [1], 6, struct.pack("<I", 9) + b"ab"),
        ["announces 9 bytes but 2 are left", "4-byte little-endian"],
    ),
    "BYTES binary count mismatch": (
        *binary("BYTES", [3], 12, bytes_elements(b"ab", b"cd")),
        ["shape [3] needs 3 values but 2"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_says_what_to_fix(case: str) -> None:
    body, json_length, words = BAD_REQUESTS[case]
    with pytest.raises(BadRequestError) as info:
        decode_infer_request(body, json_length)
    for word in words:
        assert word in info.value.message, (word, info.value.message)
    assert info.value.status_code == 400


JUNK: list[Any] = [None, "x", -1, 0, 1.5, 1e300, True, [], {}, [[1], [2, 3]], {"a": 1}, "BYTES"]


def mutate(doc: Any, rng: random.Random) -> Any:
    """Replace one random node of a JSON document with junk."""
    doc = copy.deepcopy(doc)
    nodes: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            nodes.append((node, key))
            if isinstance(value, dict | list):
                walk(value)

    walk(doc)
    parent, key = rng.choice(nodes)
    if isinstance(parent, dict) and rng.random() < 0.3:
        del parent[key]
    else:
        parent[key] = rng.choice(JUNK)
    return doc


def test_fuzzed_requests_only_raise_bad_request() -> None:
    """Whatever a client sends, the only error that escapes is a BadRequestError."""
    rng = random.Random(1234)
    body, json_length = triton_body(
        {
            "a": (np.arange(6, dtype=np.float32).reshape(2, 3), True),
            "b": (np.array([1, 2], dtype=np.int64), False),
            "c": (np.array([PNG_HEADER, b""], dtype=object), True),
            "d": (np.array(["x", "y"], dtype=object), False),
        },
        outputs=[InferRequestedOutput("y")],
    )
    assert json_length is not None
    header, payload = orjson.loads(body[:json_length]), body[json_length:]
    for _ in range(3000):
        choice = rng.random()
        if choice < 0.7:
            new_header = orjson.dumps(mutate(header, rng))
            new_body, new_length = new_header + payload, len(new_header)
        elif choice < 0.85:
            cut = rng.randrange(len(body))
            new_body, new_length = body[:cut] + body[cut + 1 :], json_length
        else:
            new_body, new_length = body, rng.choice([0, 1, json_length - 1, json_length + 3])
        with contextlib.suppress(BadRequestError):
            decode_infer_request(new_body, new_length)


@pytest.mark.parametrize("shape", [[0, 2**62], [2**31, 1], [1] * 33])
def test_a_shape_no_tensor_can_have_is_a_400(shape: list[int]) -> None:
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": shape, "data": []}]})
    with pytest.raises(BadRequestError, match=r'"shape" .* is too large'):
        decode_infer_request(body, None)
