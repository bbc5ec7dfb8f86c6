"""The Open Inference Protocol wire (KServe V2 / Triton HTTP): request and response bodies ⇄ numpy.

Covers V2 JSON tensors, the binary tensor data extension (a JSON header whose length is in the
``Inference-Header-Content-Length`` header, then raw tensor bytes in tensor order), BYTES
tensors (4-byte little-endian length + bytes per element, as Triton serializes them) and
base64. It knows nothing about models: every check here is about the wire alone, and every
mistake a client can make becomes a BadRequestError that says what to fix.

The types are in `tensors`, the bodies in `v2`, the binary extension in `binary` and JSON and
base64 in `json`; everything public is importable from `inferd.codecs`.
"""

from inferd.codecs.binary import HEADER_CONTENT_LENGTH
from inferd.codecs.json import decode_b64, json_dumps, json_loads, shown
from inferd.codecs.tensors import InferRequest, InferResponse, InferTensor, RequestedOutput
from inferd.codecs.v2 import MAX_RANK, decode_infer_request, encode_infer_response, select_outputs

__all__ = [
    "HEADER_CONTENT_LENGTH",
    "MAX_RANK",
    "InferRequest",
    "InferResponse",
    "InferTensor",
    "RequestedOutput",
    "decode_b64",
    "decode_infer_request",
    "encode_infer_response",
    "json_dumps",
    "json_loads",
    "select_outputs",
    "shown",
]
