"""Request encoding, checked by decoding with inferd's own codecs and an HTTP parser."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httptools
import numpy as np
import orjson
import pytest

from inferd.codecs import InferTensor, decode_infer_request
from inferd_bench.config import BenchConfig, BenchError
from inferd_bench.http1 import Target
from inferd_bench.workload import (
    DEFAULT_PROMPTS,
    build_workload,
    load_eval,
    openai_body,
    random_tensors,
    read_jsonl,
    v2_binary_body,
    v2_json_body,
)
from tests.unit.inferd_bench.conftest import LocalServer

ROOT = Path(__file__).resolve().parents[3]
DIGITS = ROOT / "model_repository" / "digits"
PYCODER = ROOT / "model_repository" / "pycoder"


def tensors() -> list[InferTensor]:
    image = np.empty((1, 2), dtype=object)
    image[0, 0], image[0, 1] = b"\x89PNG\x00\xff", b"plain"
    return [
        InferTensor("x", "FP32", [2, 3], np.arange(6, dtype=np.float32).reshape(2, 3) / 7),
        InferTensor("ids", "INT64", [1, 3], np.array([[1, -2, 2**40]], dtype=np.int64)),
        InferTensor("mask", "BOOL", [3], np.array([True, False, True])),
        InferTensor("image", "BYTES", [1, 2], image),
    ]


def assert_same(decoded: list[InferTensor], expected: list[InferTensor]) -> None:
    assert [t.name for t in decoded] == [t.name for t in expected]
    for got, want in zip(decoded, expected, strict=True):
        assert got.datatype == want.datatype and got.shape == want.shape
        if want.datatype == "BYTES":
            assert got.data.tolist() == want.data.tolist()
        else:
            np.testing.assert_array_equal(got.data, want.data)


def test_v2_json_body_decodes_to_the_same_tensors() -> None:
    body = v2_json_body(tensors())
    assert_same(decode_infer_request(body).inputs, tensors())
    doc = json.loads(body)
    image = doc["inputs"][3]
    assert image["parameters"] == {"content_type": "base64"}  # not UTF-8, so base64
    assert base64.b64decode(image["data"][0]) == b"\x89PNG\x00\xff"


def test_v2_binary_body_decodes_to_the_same_tensors() -> None:
    body, header_length = v2_binary_body(tensors())
    request = decode_infer_request(body, header_length)
    assert_same(request.inputs, tensors())
    assert request.parameters == {"binary_data_output": True}
    header = json.loads(body[:header_length])
    assert [i["parameters"]["binary_data_size"] for i in header["inputs"]] == [
        24,
        24,
        3,
        4 + 6 + 4 + 5,
    ]


def test_openai_body_streams_with_usage_and_sample_fields_override() -> None:
    config = BenchConfig("http://x", "tiny", max_tokens=7, ignore_eos=True)
    doc = json.loads(openai_body(config, "def f():"))
    assert doc == {
        "model": "tiny",
        "prompt": "def f():",
        "max_tokens": 7,
        "temperature": 0.0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    doc = json.loads(openai_body(config, {"prompt": "x", "max_tokens": 3, "stream": False}))
    assert doc["max_tokens"] == 3 and doc["stream"] is True  # the benchmark always streams


def parse(request: bytes) -> tuple[str, dict[str, str], bytes]:
    """(url, headers, body) of one whole HTTP request."""

    class Seen:
        def __init__(self) -> None:
            self.url, self.body, self.done = b"", b"", False
            self.headers: dict[str, str] = {}

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers[name.decode().lower()] = value.decode()

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            self.done = True

    seen = Seen()
    httptools.HttpRequestParser(seen).feed_data(request)
    assert seen.done, "the request must be complete"
    return seen.url.decode(), seen.headers, seen.body


TARGET = Target.parse("http://127.0.0.1:9")


def test_eval_folder_becomes_v1_requests() -> None:
    workload = build_workload(BenchConfig("http://x", "digits", eval_data=DIGITS), TARGET)
    assert workload.protocol == "v1"
    lines = (DIGITS / "eval" / "test.jsonl").read_text().splitlines()
    assert len(workload.requests) == len(lines)
    url, headers, body = parse(workload.requests[0])
    assert url == "/v1/models/digits:predict"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"instances": [json.loads(lines[0])["instance"]]}


def test_eval_prompts_become_openai_requests() -> None:
    kind, prompts = load_eval(PYCODER)
    assert kind == "prompt"
    workload = build_workload(BenchConfig("http://x", "pycoder", eval_data=PYCODER), TARGET)
    assert workload.protocol == "openai" and workload.streaming
    url, _, body = parse(workload.requests[0])
    assert url == "/v1/completions"
    assert json.loads(body)["prompt"] == prompts[0]


def test_eval_instances_refuse_the_v2_protocol() -> None:
    with pytest.raises(BenchError, match="--protocol v1"):
        build_workload(BenchConfig("x", "digits", protocol="v2", eval_data=DIGITS), TARGET)


def test_v2_samples_sent_as_json_or_converted_to_binary(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    bodies = [v2_json_body(tensors()), v2_json_body(tensors()[:1])]
    samples.write_bytes(b"\n".join(bodies) + b"\n\n")
    plain = build_workload(BenchConfig("x", "m", samples=samples), TARGET)
    url, headers, body = parse(plain.requests[1])
    assert url == "/v2/models/m/infer"
    assert_same(decode_infer_request(body).inputs, tensors()[:1])

    binary = build_workload(BenchConfig("x", "m", protocol="v2-binary", samples=samples), TARGET)
    url, headers, body = parse(binary.requests[0])
    assert headers["content-type"] == "application/octet-stream"
    length = int(headers["inference-header-content-length"])
    assert_same(decode_infer_request(body, length).inputs, tensors())


def test_bad_v2_sample_names_its_line(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"inputs": [{"name": "x"}]}\n')
    with pytest.raises(BenchError, match=r"samples.jsonl:1: .*datatype"):
        build_workload(BenchConfig("x", "m", protocol="v2-binary", samples=samples), TARGET)


def test_read_jsonl_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\nnot json\n')
    with pytest.raises(BenchError, match=r"bad.jsonl:3 is not valid JSON"):
        read_jsonl(path)


def test_random_tensors_follow_metadata_and_overrides() -> None:
    metadata = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [-1, 4]},
            {"name": "ids", "datatype": "INT64", "shape": [-1, -1]},
            {"name": "text", "datatype": "BYTES", "shape": [-1, 1]},
            {"name": "flag", "datatype": "BOOL", "shape": [2]},
        ]
    }
    requests = random_tensors(metadata, {"ids": (1, 7)}, count=3, seed=1)
    assert len(requests) == 3
    first = {t.name: t for t in requests[0]}
    assert first["x"].shape == [1, 4] and first["x"].data.dtype == np.float32
    assert first["ids"].shape == [1, 7] and first["ids"].data.dtype == np.int64
    assert first["text"].data.shape == (1, 1) and isinstance(first["text"].data[0, 0], bytes)
    assert first["flag"].data.dtype == np.bool_
    assert not np.array_equal(requests[0][0].data, requests[1][0].data)  # distinct samples
    again = random_tensors(metadata, {"ids": (1, 7)}, count=3, seed=1)
    np.testing.assert_array_equal(again[2][0].data, requests[2][0].data)  # seeded
    for tensors_ in requests:  # every request is valid on the wire
        assert_same(decode_infer_request(v2_json_body(tensors_)).inputs, tensors_)
    with pytest.raises(BenchError, match="model's inputs are"):
        random_tensors(metadata, {"nope": (1,)}, count=1, seed=0)


def test_random_workload_reads_the_servers_metadata(server: LocalServer) -> None:
    target = Target.parse(server.url)
    workload = build_workload(BenchConfig(server.url, "m", random_samples=4), target)
    assert len(workload.requests) == 4
    assert "x FP32[1, 4]" in workload.source
    _, _, body = parse(workload.requests[0])
    (tensor,) = decode_infer_request(body).inputs
    assert tensor.shape == [1, 4]


def test_v1_without_inputs_says_what_to_give() -> None:
    with pytest.raises(BenchError, match="--eval"):
        build_workload(BenchConfig("x", "m", protocol="v1"), TARGET)


def test_openai_default_prompts() -> None:
    workload = build_workload(BenchConfig("x", "tiny", protocol="openai"), TARGET)
    assert len(workload.requests) == len(DEFAULT_PROMPTS)
    _, _, body = parse(workload.requests[0])
    assert orjson.loads(body)["prompt"] == DEFAULT_PROMPTS[0]


def test_metadata_errors_say_what_happened(server: LocalServer) -> None:
    missing = Target.parse(server.url + "/nothing")
    with pytest.raises(BenchError, match="answered 404"):
        build_workload(BenchConfig(server.url, "m"), missing)
    with pytest.raises(BenchError, match="cannot reach"):
        build_workload(BenchConfig("x", "m"), Target.parse("http://127.0.0.1:9"))
