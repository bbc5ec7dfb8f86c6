"""Inputs → whole HTTP requests, encoded once before the run and reused for every send.

Three sources: a JSONL file of request bodies (`--samples`), an inferd model's eval set
(`--eval`, instances sent over V1 or prompts over OpenAI), or random tensors shaped from the
model's V2 metadata. Four wire formats: V2 JSON, V2 with the binary tensor extension (the
layout Triton and `inferd.codecs` use), KServe V1 and OpenAI streaming completions.
"""

from __future__ import annotations

import base64
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from inferd.codecs import HEADER_CONTENT_LENGTH, InferTensor, decode_infer_request, json_dumps
from inferd.datatypes import numpy_dtype
from inferd.errors import BadRequestError
from inferd_bench.config import BenchConfig, BenchError, Protocol
from inferd_bench.http1 import Target, encode_request

DEFAULT_PROMPTS = (
    "def fibonacci(n):",
    "import os\nimport sys\n\n",
    "class Stack:\n    def __init__(self):",
    "The quickest way to sort a list in Python is",
    "for i in range(10):",
    "Once upon a time",
    "SELECT name, count(*) FROM",
    "def read_config(path):\n    with open(path) as f:",
)

_LENGTH = struct.Struct("<I")
_JSON = "application/json"
_PROTOCOL_FOR_EVAL: dict[str, Protocol] = {"instance": "v1", "prompt": "openai"}
Body = tuple[bytes, str, int | None]  # body, content type, JSON header length (binary only)


@dataclass(frozen=True)
class Workload:
    """The run's requests, whole and ready to write; streams cycle through them."""

    requests: tuple[bytes, ...]
    protocol: Protocol
    source: str  # where the inputs came from, for the report
    streaming: bool = False  # OpenAI server-sent events: time every text chunk


# --- bodies ----------------------------------------------------------------------------------


def v2_json_body(tensors: list[InferTensor], parameters: dict[str, Any] | None = None) -> bytes:
    """A V2 JSON request; BYTES that are not UTF-8 go as base64 (MLServer's content_type)."""
    inputs = []
    for tensor in tensors:
        doc: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        params = dict(tensor.parameters)
        flat = np.asarray(tensor.data).reshape(-1)
        if tensor.datatype == "BYTES":
            items = [v if isinstance(v, bytes) else str(v).encode() for v in flat.tolist()]
            try:
                doc["data"] = [item.decode() for item in items]
            except UnicodeDecodeError:
                doc["data"] = [base64.b64encode(item).decode("ascii") for item in items]
                params["content_type"] = "base64"
        else:
            doc["data"] = np.ascontiguousarray(flat, dtype=numpy_dtype(tensor.datatype))
        if params:
            doc["parameters"] = params
        inputs.append(doc)
    body: dict[str, Any] = {"inputs": inputs}
    if parameters:
        body["parameters"] = parameters
    return json_dumps(body)


def v2_binary_body(
    tensors: list[InferTensor],
    parameters: dict[str, Any] | None = None,
    outputs: list[dict[str, Any]] | None = None,
) -> tuple[bytes, int]:
    """A V2 request with every tensor in the binary extension; also the JSON header's length.

    Outputs come back binary too (`binary_data_output`), as `tritonclient` asks by default.
    """
    inputs, chunks = [], []
    for tensor in tensors:
        if tensor.datatype == "BYTES":
            flat = np.asarray(tensor.data, dtype=object).reshape(-1).tolist()
            items = [v if isinstance(v, bytes) else str(v).encode() for v in flat]
            raw = b"".join(_LENGTH.pack(len(item)) + item for item in items)
        else:
            dtype = numpy_dtype(tensor.datatype).newbyteorder("<")
            raw = np.ascontiguousarray(tensor.data, dtype=dtype).tobytes()
        params = {k: v for k, v in tensor.parameters.items() if k != "content_type"}
        params["binary_data_size"] = len(raw)
        inputs.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": params,
            }
        )
        chunks.append(raw)
    doc: dict[str, Any] = {
        "inputs": inputs,
        "parameters": {"binary_data_output": True, **(parameters or {})},
    }
    if outputs:
        doc["outputs"] = outputs
    header = json_dumps(doc)
    return header + b"".join(chunks), len(header)


def openai_body(config: BenchConfig, prompt: Any) -> bytes:
    """A streaming completion; a dict sample's fields override the defaults."""
    body: dict[str, Any] = {
        "model": config.model,
        "max_tokens": config.max_tokens,
        "temperature": 0.0,
    }
    if config.ignore_eos:
        body["ignore_eos"] = True
    body.update(prompt if isinstance(prompt, dict) else {"prompt": str(prompt)})
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return json_dumps(body)


# --- sources ---------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[tuple[str, Any]]:
    """(location, value) of every non-empty line, so mistakes can name the line."""
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BenchError(f"cannot read {path}: {error}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((f"{path}:{number}", orjson.loads(line)))
        except orjson.JSONDecodeError:
            raise BenchError(f"{path}:{number} is not valid JSON") from None
    if not out:
        raise BenchError(f"{path} holds no samples")
    return out


def eval_files(path: Path) -> list[Path]:
    """A model folder (its eval/), an eval folder, or one JSONL file."""
    if path.is_file():
        return [path]
    folder = path / "eval" if (path / "eval").is_dir() else path
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise BenchError(f"{path} has no eval/*.jsonl (lines of {{'instance': ..., ...}})")
    return files


def load_eval(path: Path) -> tuple[str, list[Any]]:
    """An eval set's inputs: ('instance', V1 instances) or ('prompt', prompts)."""
    kinds: set[str] = set()
    values: list[Any] = []
    for file in eval_files(path):
        for where, record in read_jsonl(file):
            keys = ("instance", "prompt") if isinstance(record, dict) else ()
            key = next((k for k in keys if k in record), None)
            if key is None:
                raise BenchError(
                    f'{where}: an eval line is {{"instance": ..., "target": ...}} '
                    'or {"prompt": ...}'
                )
            kinds.add(key)
            values.append(record[key])
    if len(kinds) > 1:
        raise BenchError(f"{path} mixes instances and prompts; point --eval at one file")
    return kinds.pop(), values


def fetch_metadata(target: Target, model: str, headers: dict[str, str]) -> dict[str, Any]:
    """`GET /v2/models/{model}`: its inputs' names, datatypes and shapes."""
    url = f"{target.url}/v2/models/{model}"
    request = urllib.request.Request(url, headers={"Accept": _JSON, **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            doc = orjson.loads(reply.read())
    except urllib.error.HTTPError as error:
        detail = error.read()[:300].decode("utf-8", "replace")
        raise BenchError(f"GET {url} answered {error.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise BenchError(f"cannot reach {target.url}: {reason}; is the server running?") from None
    except orjson.JSONDecodeError:
        raise BenchError(f"GET {url} did not answer JSON; is this a V2 server?") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise BenchError(f"GET {url} lists no inputs; give --samples instead")
    return doc


def random_tensors(
    metadata: dict[str, Any], shapes: dict[str, tuple[int, ...]], count: int, seed: int
) -> list[list[InferTensor]]:
    """`count` requests of random values; a -1 (variable) dimension becomes 1 unless
    `shapes` gives the input's whole shape."""
    rng = np.random.default_rng(seed)
    inputs = metadata["inputs"]
    names = {str(item.get("name")) for item in inputs}
    unknown = sorted(set(shapes) - names)
    if unknown:
        raise BenchError(f"--shape names {unknown}, but the model's inputs are {sorted(names)}")
    requests = []
    for _ in range(count):
        tensors = []
        for item in inputs:
            name, datatype = str(item.get("name")), str(item.get("datatype"))
            shape = list(shapes.get(name) or [1 if d < 0 else d for d in item.get("shape", [])])
            tensors.append(InferTensor(name, datatype, shape, _random(rng, datatype, shape)))
        requests.append(tensors)
    return requests


def _random(rng: np.random.Generator, datatype: str, shape: list[int]) -> np.ndarray[Any, Any]:
    try:
        dtype = numpy_dtype(datatype)
    except ValueError as error:
        raise BenchError(f"the model's metadata: {error}") from None
    if datatype == "BYTES":
        letters = rng.integers(ord("a"), ord("z") + 1, size=(*shape, 8), dtype=np.uint8)
        out = np.empty(shape, dtype=object)
        out.reshape(-1)[:] = [bytes(row) for row in letters.reshape(-1, 8)]
        return out
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        return rng.integers(0, 10, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# --- the workload ----------------------------------------------------------------------------


def build_workload(config: BenchConfig, target: Target) -> Workload:
    """Every request of the run, encoded; fetches the model's metadata for random inputs."""
    eval_kind, eval_values = load_eval(config.eval_data) if config.eval_data else ("", [])
    protocol: Protocol = config.protocol or _PROTOCOL_FOR_EVAL.get(eval_kind, "v2")
    if eval_kind == "instance" and protocol != "v1":
        raise BenchError(
            "an eval set holds V1 instances; use --protocol v1 (POST /v1/models/M:predict)"
        )
    if eval_kind == "prompt" and protocol != "openai":
        raise BenchError("an eval set of prompts goes over --protocol openai")
    bodies: list[Body]
    if protocol == "openai":
        path, route = "/v1/completions", "OpenAI /v1/completions (stream)"
        if config.samples:
            prompts = [value for _, value in read_jsonl(config.samples)]
            source = f"{len(prompts)} prompts from {config.samples}"
        elif eval_kind:
            prompts, source = eval_values, f"{len(eval_values)} prompts from {config.eval_data}"
        else:
            prompts, source = list(DEFAULT_PROMPTS), f"{len(DEFAULT_PROMPTS)} built-in prompts"
        bodies = [(openai_body(config, p), _JSON, None) for p in prompts]
    elif protocol == "v1":
        path, route = f"/v1/models/{config.model}:predict", "KServe V1"
        bodies, source = _v1_bodies(config, eval_values)
    else:
        binary = protocol == "v2-binary"
        path, route = f"/v2/models/{config.model}/infer", f"V2 {'binary' if binary else 'JSON'}"
        bodies, source = _v2_bodies(config, target, binary)
    requests = []
    for body, content_type, json_length in bodies:
        extra = {"Content-Type": content_type, **config.headers}
        if json_length is not None:
            extra[HEADER_CONTENT_LENGTH.title()] = str(json_length)
        requests.append(encode_request(target, "POST", path, body, extra))
    return Workload(tuple(requests), protocol, f"{route}: {source}", protocol == "openai")


def _v1_bodies(config: BenchConfig, eval_values: list[Any]) -> tuple[list[Body], str]:
    if config.eval_data:
        bodies: list[Body] = [(json_dumps({"instances": [v]}), _JSON, None) for v in eval_values]
        return bodies, f"{len(bodies)} eval instances from {config.eval_data}"
    if not config.samples:
        raise BenchError(
            "V1 requests need inputs: --eval (an inferd model's eval set) or --samples"
        )
    bodies = []
    for where, value in read_jsonl(config.samples):
        if not isinstance(value, dict) or not isinstance(value.get("instances"), list):
            raise BenchError(f'{where}: a V1 sample is {{"instances": [...]}}')
        bodies.append((json_dumps(value), _JSON, None))
    return bodies, f"{len(bodies)} V1 bodies from {config.samples}"


def _v2_bodies(config: BenchConfig, target: Target, binary: bool) -> tuple[list[Body], str]:
    if config.samples:
        samples = read_jsonl(config.samples)
        source = f"{len(samples)} V2 bodies from {config.samples}"
        if not binary:
            return [(json_dumps(value), _JSON, None) for _, value in samples], source
        out: list[Body] = []
        for where, value in samples:
            try:
                parsed = decode_infer_request(json_dumps(value))
            except BadRequestError as error:
                raise BenchError(f"{where}: {error.message}") from None
            outputs = [{"name": o.name, "parameters": o.parameters} for o in parsed.outputs or []]
            body, length = v2_binary_body(parsed.inputs, parsed.parameters, outputs)
            out.append((body, "application/octet-stream", length))
        return out, source
    metadata = fetch_metadata(target, config.model, config.headers)
    requests = random_tensors(metadata, config.shapes, config.random_samples, config.seed)
    shapes = ", ".join(f"{t.name} {t.datatype}{t.shape}" for t in requests[0])
    source = f"{len(requests)} random requests ({shapes})"
    if binary:
        encoded = [v2_binary_body(tensors) for tensors in requests]
        return [(body, "application/octet-stream", n) for body, n in encoded], source
    return [(v2_json_body(tensors), _JSON, None) for tensors in requests], source


__all__ = [
    "DEFAULT_PROMPTS",
    "Workload",
    "build_workload",
    "fetch_metadata",
    "load_eval",
    "openai_body",
    "random_tensors",
    "read_jsonl",
    "v2_binary_body",
    "v2_json_body",
]
