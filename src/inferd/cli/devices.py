"""`inferd devices`: what this machine can run models on: ONNX Runtime's execution providers,
the CPU with the features that make quantized models fast (and those it lacks), its GPUs."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from inferd.cli import common
from inferd.hardware import Cpu, Gpu, cpu, gpus

JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def lacking(found: Cpu, gpu_list: list[Gpu], gpu_note: str, names: list[str]) -> list[str]:
    """What is missing that would make models faster here, each with what it costs."""
    notes = []
    if not found.vnni:
        notes.append(
            "no VNNI: int8 dot products take three instructions and can saturate; inferd "
            "quantizes with reduce_range so int8 stays accurate here"
        )
    if "amx" not in found.features:
        notes.append("no AMX: no int8/bf16 matrix tiles (Sapphire Rapids and later have them)")
    if "avx512-fp16" not in found.features:
        notes.append(
            "no AVX512-FP16: float16 is computed through float32 on this CPU, so fp16 "
            "variants are no faster than fp32 here"
        )
    if not gpu_list:
        notes.append(f"no GPU: {gpu_note}")
    elif not any(n in names for n in ("CUDAExecutionProvider", "TensorrtExecutionProvider")):
        notes.append(
            "NVIDIA GPU present but this onnxruntime has no CUDA provider: install "
            "onnxruntime-gpu to run models on it"
        )
    return notes


def report() -> dict[str, Any]:
    from inferd.backends import onnx as onnx_backend

    found = cpu()
    gpu_list, gpu_note = gpus()
    provider_list = onnx_backend.providers()
    names = [name for name, _, _ in provider_list]
    return {
        "onnxruntime": onnx_backend.runtime_version(),
        "providers": [
            {"name": name, "runs_on": runs_on, "device": device}
            for name, runs_on, device in provider_list
        ],
        "cpu": {
            "model": found.model,
            "cores": found.cores,
            "features": list(found.features),
            "lacks": list(found.lacks),
            "vnni": found.vnni,
        },
        "gpus": [
            {"index": g.index, "name": g.name, "memory_mib": g.memory_mib, "driver": g.driver}
            for g in gpu_list
        ],
        "gpu_note": gpu_note,
        "lacking": lacking(found, gpu_list, gpu_note, names),
        "auto_tries": [name for name, _, device in provider_list if device],
    }


def devices(as_json: JSON = False) -> None:
    """List the execution providers and devices found, the CPU's features (AVX-512, VNNI,
    AMX, ...) and what is lacking; `runtime.device: auto` chooses among these."""
    found = report()
    if as_json:
        common.console.print_json(json.dumps(found))
        return
    out = common.console
    c = found["cpu"]
    lines = [
        f"CPU: {c['model']}, {c['cores']} cores",
        f"  has:   {', '.join(c['features']) or 'none of note'}",
        f"  lacks: {', '.join(c['lacks']) or 'nothing of note'}",
    ]
    if found["gpus"]:
        lines += [
            f"GPU {g['index']}: {g['name']}, {g['memory_mib']} MiB, driver {g['driver']}"
            for g in found["gpus"]
        ]
    else:
        lines.append(f"GPU: none ({found['gpu_note']})")
    lines.append(f"onnxruntime {found['onnxruntime']} execution providers:")
    width = max(len(p["name"]) for p in found["providers"])
    for p in found["providers"]:
        mark = "" if p["device"] else "  (skipped by device: auto)"
        lines.append(f"  {p['name']:<{width}}  {p['runs_on']}{mark}")
    lines.append(f"runtime.device: auto tries {', '.join(found['auto_tries'])}")
    lines.append("lacking:")
    lines += [f"  - {note}" for note in found["lacking"]] or ["  nothing"]
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True, markup=False)
