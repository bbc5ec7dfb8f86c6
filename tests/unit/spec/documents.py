"""model.yaml documents the spec tests share, and the message a bad one is refused with."""

from __future__ import annotations

from typing import Any

import pytest

from inferd.errors import SpecError
from inferd.spec import parse_spec

IMAGE_INPUT = {"name": "image", "datatype": "BYTES", "shape": [1]}


def error(data: dict[str, Any]) -> str:
    """The message parse_spec refuses `data` with (the test fails if it is accepted)."""
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    return caught.value.message


def image_spec(**stage: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "inputs": [IMAGE_INPUT],
        "preprocess": [{"type": "image", "size": [8, 8], **stage}],
    }


def tabular_spec(**stage: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "inputs": [{"name": "a", "datatype": "FP32", "shape": [1]}],
        "preprocess": [{"type": "tabular", "features": ["a", "b"], **stage}],
    }


def audio_spec(**stage: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1]}],
        "preprocess": [{"type": "audio", **stage}],
    }


def classifier(**extra: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "task": "classification",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}],
        "postprocess": [{"type": "classify"}],
        "labels": ["no", "yes"],
        **extra,
    }
