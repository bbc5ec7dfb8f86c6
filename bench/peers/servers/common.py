"""What every peer server shares: its configuration and how it opens an ONNX model.

Each peer runs in its own virtual environment that holds only its framework, onnxruntime and
numpy, so this module needs nothing else. Sessions are made with exactly the options inferd's
ONNX backend uses (one intra-op thread, no spinning, all graph optimizations), so the peers
differ only in how they serve, never in how fast the model itself runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

CONFIG_ENV = "PEER_CONFIG"  # path of the JSON file bench/peers/run.py writes for the server

# numpy dtype → Open Inference Protocol V2 datatype, for the outputs the test models have
V2_DATATYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32"}


@dataclass(frozen=True)
class ModelConfig:
    name: str  # served at /v2/models/{name}/infer
    path: str  # the ONNX file: the same one for every peer
    input: str  # the graph's one input


@dataclass(frozen=True)
class PeerConfig:
    host: str
    port: int
    models: tuple[ModelConfig, ...]
    max_batch_size: int
    batch_wait_s: float  # longest wait for a batch to fill, where the peer has such a knob
    threads: int  # ONNX Runtime intra-op threads per session


def load_config() -> PeerConfig:
    """The run's settings, from the JSON file named by $PEER_CONFIG."""
    with open(os.environ[CONFIG_ENV]) as file:
        raw: dict[str, Any] = json.load(file)
    return PeerConfig(
        host=raw["host"],
        port=int(raw["port"]),
        models=tuple(ModelConfig(**m) for m in raw["models"]),
        max_batch_size=int(raw["max_batch_size"]),
        batch_wait_s=float(raw["batch_wait_s"]),
        threads=int(raw["threads"]),
    )


def open_session(path: str, threads: int) -> ort.InferenceSession:
    """An ONNX Runtime session with inferd's options, so every peer runs the same model code."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def v2_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    """One output tensor as a V2 JSON object (row-major data, flattened)."""
    return {
        "name": name,
        "datatype": V2_DATATYPES[str(array.dtype)],
        "shape": list(array.shape),
        "data": array.ravel().tolist(),
    }
