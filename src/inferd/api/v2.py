"""The Open Inference Protocol (V2) over REST: health, metadata, repository index and infer.

Shapes live here: V2 tensors become the DataPlane's per-item inputs, and per-item predictions
become V2 output tensors (stacked along the batch dimension when the model batches). V2
parameters are scalars, so per-item notes and decisions are flattened into strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from inferd import __version__
from inferd.api.common import (
    answer_headers,
    deadline,
    json_response,
    predictive_model,
    unless_disconnected,
)
from inferd.codecs import (
    HEADER_CONTENT_LENGTH,
    InferResponse,
    InferTensor,
    decode_infer_request,
    encode_infer_response,
)
from inferd.dataplane import DataPlane, Served
from inferd.datatypes import datatype_of
from inferd.errors import BadRequestError, ModelError
from inferd.http.messages import HttpRequest, HttpResponse
from inferd.pipeline import Request
from inferd.spec import TensorSpec
from inferd.stages import Prediction

_PLATFORM = {"onnx": "onnxruntime_onnx", "python": "python"}


def _tensor_metadata(tensors: Sequence[TensorSpec], batched: bool) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "datatype": t.datatype,
            "shape": [-1, *t.shape] if batched else list(t.shape),
        }
        for t in tensors
    ]


def _stack_padded(arrays: list[np.ndarray], pad: Any) -> np.ndarray:
    """Stack per-item arrays whose first axis differs, padding each to the longest."""
    longest = max(a.shape[0] for a in arrays)
    batch = np.full((len(arrays), longest, *arrays[0].shape[1:]), pad, dtype=arrays[0].dtype)
    for row, array in enumerate(arrays):
        batch[row, : array.shape[0]] = array
    return batch


def _as_batch_of_one(value: np.ndarray) -> np.ndarray:
    """`np.stack([value])` without the copy: a view with a leading axis of 1."""
    return value[np.newaxis] if isinstance(value, np.ndarray) else np.stack([value])


def output_tensors(
    name: str, batched: bool, ragged: dict[str, Any], predictions: Sequence[Prediction]
) -> dict[str, np.ndarray]:
    """Per-item prediction tensors → V2 output tensors (stacked when the model batches)."""
    if not batched:
        return dict(predictions[0].tensors)
    names = list(predictions[0].tensors)
    if len(predictions) == 1 and not ragged:
        return {n: _as_batch_of_one(v) for n, v in predictions[0].tensors.items()}
    try:
        return {
            n: _stack_padded([p.tensors[n] for p in predictions], ragged[n])
            if n in ragged
            else np.stack([p.tensors[n] for p in predictions])
            for n in names
        }
    except ValueError as error:
        raise ModelError(
            f"model {name!r}: outputs of different shapes cannot be returned as "
            f"one V2 tensor ({error}); use the V1 API or send one item per request"
        ) from None


def merged_notes(notes: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-item notes as flat V2 response parameters; with several items, `KEY_items` lists
    the indices of the items a note is about (V2 parameter values are scalars)."""
    if len(notes) == 1:
        return dict(notes[0])
    merged: dict[str, Any] = {}
    for index, note in enumerate(notes):
        for key, value in note.items():
            merged[key] = value
            listed = merged.get(f"{key}_items")
            merged[f"{key}_items"] = f"{listed},{index}" if listed else str(index)
    return merged


def _with_decisions(notes: dict[str, Any], decisions: list[list[str]] | None) -> dict[str, Any]:
    """V2 parameters are scalars, so the decisions are one string: each item's decision
    names joined by ",", the items joined by ";" ("specialist_review;" for two items)."""
    if decisions is None:
        return notes
    return {**notes, "decisions": ";".join(",".join(names) for names in decisions)}


def server_metadata() -> dict[str, Any]:
    return {
        "name": "inferd",
        "version": __version__,
        "extensions": ["binary_tensor_data", "kserve_v1", "metrics"],
    }


def model_metadata(dataplane: DataPlane, name: str, version: str | None) -> dict[str, Any]:
    model = dataplane.model(name, version)
    return {
        "name": model.name,
        "versions": [str(v) for v in sorted(dataplane.entry(name).versions)],
        "platform": _PLATFORM.get(model.spec.backend, model.spec.backend),
        "inputs": _tensor_metadata(model.inputs, model.batched),
        "outputs": _tensor_metadata(model.outputs, model.batched),
        "parameters": {
            "task": model.spec.task,
            "max_batch_size": model.spec.max_batch_size,
            "description": model.spec.description,
        },
    }


def repository_index(dataplane: DataPlane) -> list[dict[str, Any]]:
    """Every model folder and its state, loaded or not (the repository extension)."""
    index: list[dict[str, Any]] = []
    for entry in dataplane.entries():
        for number, model in sorted(entry.versions.items()):
            state = "READY" if model.ready else "LOADING"
            index.append({"name": entry.name, "version": str(number), "state": state})
        if not entry.versions:
            index.append(
                {"name": entry.name, "state": "UNAVAILABLE", "reason": "; ".join(entry.errors)}
            )
    return index


def infer_response(served: Served, response_id: str) -> InferResponse:
    """The V2 answer to a request the DataPlane served."""
    model, answers = served.model, served.answers
    pipeline = model.predictive
    predictions = [a.prediction for a in answers]
    tensors = output_tensors(model.name, pipeline.batched, pipeline.ragged, predictions)
    outputs = [
        InferTensor(name=n, datatype=datatype_of(array.dtype), shape=list(array.shape), data=array)
        for n, array in tensors.items()
    ]
    decisions = [a.decisions or [] for a in answers] if pipeline.rules is not None else None
    return InferResponse(
        model_name=model.name,
        model_version=str(model.version),
        id=response_id,
        outputs=outputs,
        parameters=_with_decisions(merged_notes([p.parameters for p in predictions]), decisions),
    )


class V2Routes:
    """The V2 REST routes' handlers."""

    def __init__(self, dataplane: DataPlane, max_body_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes

    async def live(self, request: HttpRequest) -> HttpResponse:
        return json_response({"live": self.dataplane.live()})

    async def ready(self, request: HttpRequest) -> HttpResponse:
        ready = self.dataplane.ready()
        return json_response({"ready": ready}, 200 if ready else 503)

    async def server_metadata(self, request: HttpRequest) -> HttpResponse:
        return json_response(server_metadata())

    async def index(self, request: HttpRequest) -> HttpResponse:
        return json_response(repository_index(self.dataplane))

    async def model_metadata(self, request: HttpRequest) -> HttpResponse:
        params = request.params
        return json_response(model_metadata(self.dataplane, params["model"], params.get("version")))

    async def model_ready(self, request: HttpRequest) -> HttpResponse:
        params = request.params
        ready = self.dataplane.model_ready(params["model"], params.get("version"))
        return json_response({"name": params["model"], "ready": ready}, 200 if ready else 503)

    async def infer(self, request: HttpRequest) -> HttpResponse:
        params = request.params
        name, version = params["model"], params.get("version")
        predictive_model(self.dataplane, name, version, request)
        body = await request.body(self.max_body_bytes)
        header = request.headers.get(HEADER_CONTENT_LENGTH)
        if header is not None and not (header.isascii() and header.isdigit()):
            raise BadRequestError(f"{HEADER_CONTENT_LENGTH} must be a byte count; got {header!r}")
        infer_request = decode_infer_request(body, int(header) if header is not None else None)
        deadline_at = deadline(request, infer_request.parameters)
        served = await unless_disconnected(
            request,
            self.dataplane.infer(
                name,
                version,
                infer_request.inputs,
                Request(request.id, deadline_at, infer_request.parameters or {}),
            ),
        )
        response_id = infer_request.id if infer_request.id is not None else request.id
        response = infer_response(served, response_id)
        payload, json_length = encode_infer_response(response, infer_request)
        headers = answer_headers(served, request.id)
        if json_length is None:
            return HttpResponse(payload, headers=headers)
        headers[HEADER_CONTENT_LENGTH] = str(json_length)
        return HttpResponse(payload, content_type="application/octet-stream", headers=headers)
