"""Quantizing MiniLM support-intent: dynamic int8 (the target), static int8 and fp16, each
against the fp32 model it was made from, at batch 8, measured in this run.

Target: dynamic int8 ≥ 1.8x the fp32 throughput at batch 8, accuracy drop ≤ 1 point.
The model is copied from model_repository/support-intent-minilm when it has been built there
(its 86 MiB model.onnx linked, not copied), else built into `work` by its build script.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bench.harness.report import Figure, figure
from inferd.optimize.progress import SILENT
from inferd.optimize.quantize import quantize

ROOT = Path(__file__).resolve().parents[2]
NAME = "support-intent-minilm"
BUILT = ROOT / "model_repository" / NAME
BUILD = ROOT / "examples" / "support_intent_minilm" / "build.py"
SECTION = "quantize"
SECONDS = 10.0
"""Side-by-side timing per variant (interleaved rounds, medians)."""


def prepare(repo: Path) -> Path:
    model = repo / NAME
    if (BUILT / "1" / "model.onnx").is_file():
        shutil.copytree(BUILT, model, ignore=shutil.ignore_patterns("*.onnx"))
        (model / "1" / "model.onnx").symlink_to(BUILT / "1" / "model.onnx")
        print(f"using {BUILT} (linked)", flush=True)
    else:
        print(f"building {NAME} into {model} (~1 min)", flush=True)
        subprocess.run([sys.executable, str(BUILD), "--out", str(model)], check=True, cwd=ROOT)
    return model


def run(work: Path) -> list[Figure]:
    repo = work / "repo"
    repo.mkdir()
    prepare(repo)
    figures: list[Figure] = []
    for method in ("dynamic-int8", "static-int8", "fp16"):
        made = quantize(repo, NAME, method, allow_slower=True, steps=SILENT, seconds=SECONDS)
        m = made.variant.measured
        drop = (m["source_value"] - m["value"]) * 100
        print(
            f"{method}: accuracy {m['value']:.4f} (fp32 {m['source_value']:.4f}), "
            f"{m['ms_per_batch']:.2f} ms per batch of {m['batch']} (fp32 "
            f"{m['source_ms_per_batch']:.2f} ms) = {m['speedup']:.2f}x; settings "
            f"{made.variant.settings}",
            flush=True,
        )
        for warning in made.warnings:
            print(f"  warning: {warning}", flush=True)
        target = method == "dynamic-int8"
        figures += [
            figure(
                SECTION,
                f"MiniLM {method} throughput vs fp32, batch 8",
                m["speedup"],
                "x",
                ">=" if target else None,
                1.8 if target else None,
            ),
            figure(
                SECTION,
                f"MiniLM {method} accuracy drop",
                drop,
                "pt",
                "<=" if target else None,
                1.0 if target else None,
            ),
            figure(SECTION, f"MiniLM {method} ms per batch of 8", m["ms_per_batch"], "ms"),
        ]
    figures.insert(
        0, figure(SECTION, "MiniLM fp32 ms per batch of 8", m["source_ms_per_batch"], "ms")
    )
    figures.insert(1, figure(SECTION, "MiniLM fp32 accuracy", m["source_value"], "acc"))
    return figures
