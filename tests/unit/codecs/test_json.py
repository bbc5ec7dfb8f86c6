"""JSON bodies and base64: numpy and bytes written, bad JSON and bad base64 refused."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from inferd.codecs import decode_b64, json_dumps, json_loads
from inferd.errors import BadRequestError

PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"  # bytes that are not UTF-8


def test_json_dumps_numpy_and_bytes() -> None:
    obj = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3)[:, ::2],  # not contiguous
        "s": np.float16(1.5),
        "i": np.int64(7),
        "o": np.array([b"x", "y"], dtype=object),
        "b": PNG_HEADER,
        "t": (1, 2),
    }
    assert orjson.loads(json_dumps(obj)) == {
        "a": [[0.0, 2.0], [3.0, 5.0]],
        "s": 1.5,
        "i": 7,
        "o": ["x", "y"],
        "b": base64.b64encode(PNG_HEADER).decode(),
        "t": [1, 2],
    }


def test_json_loads_and_b64() -> None:
    assert json_loads(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(BadRequestError, match="config is not valid JSON"):
        json_loads(b'{"a": ', what="config")
    assert decode_b64(base64.b64encode(PNG_HEADER).decode()) == PNG_HEADER
    for bad in ["abc", "a$==", "é", 5]:
        with pytest.raises(BadRequestError, match="image"):
            decode_b64(bad, what="image")  # type: ignore[arg-type]
