"""JSON bodies (orjson, numpy arrays written natively) and base64, the text JSON carries
bytes in; and `shown`, a client's value as error messages quote it."""

from __future__ import annotations

import base64
import reprlib
from typing import Any

import numpy as np
import orjson

from inferd.errors import BadRequestError


def _json_default(obj: Any) -> Any:
    """What orjson cannot write natively: non-contiguous/object arrays, bytes."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes | bytearray | memoryview):
        raw = bytes(obj)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    raise TypeError(f"cannot serialize {type(obj).__name__} to JSON")


def json_dumps(obj: Any) -> bytes:
    """Serialize a reply; numpy arrays and scalars go through orjson's native (fast) path."""
    return orjson.dumps(obj, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)


def json_loads(body: bytes, what: str = "request body") -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadRequestError(f"{what} is not valid JSON: {e}") from None


_SHORT = reprlib.Repr()
_SHORT.maxlevel = 3
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 60


def shown(value: Any) -> str:
    """A client's value as an error message quotes it: its repr, cut short at any size or
    depth (a full repr of a deeply nested JSON list exhausts the stack, of a big one the log)."""
    return _SHORT.repr(value)


def decode_b64(value: str, what: str = "input") -> bytes:
    if not isinstance(value, str):
        raise BadRequestError(f"{what} must be a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as e:  # binascii.Error, or non-ASCII text
        raise BadRequestError(f"{what} is not valid base64: {e}") from None
