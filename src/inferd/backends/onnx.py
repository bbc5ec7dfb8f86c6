"""The ONNX Runtime backend (the default): threads and execution providers from the spec."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from inferd.backends.auto_device import Choice, Run, choose, sample_feed
from inferd.errors import SpecError
from inferd.hardware import core_share
from inferd.spec import ModelSpec, TensorSpec

logger = logging.getLogger(__name__)

NOT_DEVICES = frozenset({"AzureExecutionProvider"})
"""Providers that are not a device of this machine (Azure's calls a remote endpoint)."""

_DATATYPE_BY_ORT = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _tensor_spec(node: Any) -> TensorSpec:
    datatype = _DATATYPE_BY_ORT.get(node.type)
    if datatype is None:
        raise SpecError(f"tensor {node.name!r} has type {node.type}, which inferd cannot serve")
    shape = [dim if isinstance(dim, int) and dim > 0 else -1 for dim in (node.shape or [])]
    return TensorSpec(name=node.name, datatype=datatype, shape=shape)


def _as_text(value: np.ndarray) -> np.ndarray:
    """BYTES elements → str for ORT's string tensors (UTF-8, not numpy's ASCII default)."""
    flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.reshape(-1)]
    return np.array(flat, dtype=np.object_).reshape(value.shape)


PROVIDER_DEVICES = {
    "CPUExecutionProvider": "this CPU",
    "CUDAExecutionProvider": "NVIDIA GPU (CUDA)",
    "TensorrtExecutionProvider": "NVIDIA GPU (TensorRT)",
    "ROCMExecutionProvider": "AMD GPU (ROCm)",
    "MIGraphXExecutionProvider": "AMD GPU (MIGraphX)",
    "OpenVINOExecutionProvider": "Intel CPU, GPU or NPU (OpenVINO)",
    "DnnlExecutionProvider": "CPU (oneDNN)",
    "DmlExecutionProvider": "GPU (DirectML)",
    "CoreMLExecutionProvider": "Apple Neural Engine or GPU (Core ML)",
    "AzureExecutionProvider": "remote Azure endpoints, not a device of this machine",
}


GPU_PROVIDERS = frozenset(
    {"CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider"}
)


def providers() -> list[tuple[str, str, bool]]:
    """This onnxruntime's execution providers: name, what it runs on, whether it is a
    device of this machine (what `device: auto` tries)."""
    return [
        (name, PROVIDER_DEVICES.get(name, "unknown to inferd"), name not in NOT_DEVICES)
        for name in ort.get_available_providers()
    ]


def runtime_version() -> str:
    return str(ort.__version__)


def device_providers() -> list[str]:
    """This onnxruntime's execution providers that run on a device of this machine."""
    return [p for p in ort.get_available_providers() if p not in NOT_DEVICES]


def providers_for(device: str) -> list[Any]:
    """Execution providers for a spec's `runtime.device`, failing clearly if unavailable."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" or device.startswith("cuda:"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise SpecError(
                f"runtime.device is {device!r} but this onnxruntime has no CUDA provider; "
                "install onnxruntime-gpu or set device: cpu"
            )
        device_id = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
    raise SpecError(f"runtime.device {device!r} is not known; use cpu, cuda, cuda:N or auto")


def _open(path: Path, options: Any, providers: list[Any]) -> Any:
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # ORT raises its own untyped errors for bad files
        raise SpecError(f"{path} could not be loaded by onnxruntime: {error}") from None


def _auto(path: Path, options: Any) -> tuple[Any, Choice]:
    """`device: auto`: a session per device provider, tried on a sample batch; the fastest
    that matches the CPU's outputs is kept (the CPU when none does)."""
    cpu = "CPUExecutionProvider"
    sessions = {cpu: _open(path, options, [cpu])}
    for provider in device_providers():
        if provider != cpu:
            try:  # the CPU takes the nodes a device cannot run, as it would when chosen
                sessions[provider] = ort.InferenceSession(
                    str(path), sess_options=options, providers=[provider, cpu]
                )
            except Exception as error:
                logger.info("device auto: %s cannot load %s: %s", provider, path, error)
    reference = sessions[cpu]
    inputs = [_tensor_spec(node) for node in reference.get_inputs()]
    names = [node.name for node in reference.get_outputs()]

    def runner(session: Any) -> Run:
        def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            fed = {k: _as_text(v) if v.dtype == np.object_ else v for k, v in feed.items()}
            return dict(zip(names, session.run(names, fed), strict=True))

        return run

    try:
        choice = choose({n: runner(s) for n, s in sessions.items()}, cpu, sample_feed(inputs))
    except Exception as error:  # the model cannot run a made-up batch: stay on the CPU
        choice = Choice(cpu, rejected={"sample batch": f"{type(error).__name__}: {error}"})
    logger.info("device auto for %s: %s", path, choice.describe())
    return sessions[choice.name], choice


class OnnxBackend:
    """An ONNX Runtime session. `run` is thread-safe (ORT sessions are)."""

    def __init__(self, path: Path, threads: int, device: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning threads steal the cores the HTTP loop needs between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.device_choice: Choice | None = None
        """What `device: auto` measured and chose (None for a named device)."""
        if device == "auto":
            self._session, self.device_choice = _auto(path, options)
        else:
            self._session = _open(path, options, providers_for(device))
        self.inputs = [_tensor_spec(node) for node in self._session.get_inputs()]
        self.outputs = [_tensor_spec(node) for node in self._session.get_outputs()]
        self._output_names = [spec.name for spec in self.outputs]
        self.on_gpu = self._session.get_providers()[0] in GPU_PROVIDERS
        """Whether the model runs on a GPU: its calls' time is then GPU time (monitoring)."""

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {
            name: _as_text(value) if value.dtype == np.object_ else value
            for name, value in inputs.items()
        }
        results = self._session.run(self._output_names, feed)
        return dict(zip(self._output_names, results, strict=True))

    def close(self) -> None:
        """Drop the session; ORT frees its memory when the last batch using it ends."""
        self.__dict__.pop("_session", None)


def load(spec: ModelSpec, version_dir: Path, trust_code: bool) -> OnnxBackend:
    path = version_dir / spec.artifact_name()
    if not path.exists():
        raise SpecError(f"model {spec.name!r}: {path} does not exist; put the ONNX file there")
    return OnnxBackend(path, spec.runtime.threads or core_share(), spec.runtime.device)
