"""Distillation target: the MiniLM support-intent model (teacher) distilled into the small
support-intent subword model (student), against the teacher and the same student trained on
labels alone, all measured in this run (`inferd.optimize.distill` measures them side by side).

Targets (issue 14): the student ≥ 5x the teacher's throughput at batch 8 (model stage), its
accuracy within 3 points of the teacher's, and better than labels alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bench.harness.report import Figure, figure
from inferd.optimize.distill import distill
from inferd.optimize.measure import eval_instances
from inferd.repository import load_model

ROOT = Path(__file__).resolve().parents[2]
STUDENT = ROOT / "model_repository" / "support-intent"
TEACHER = ROOT / "model_repository" / "support-intent-minilm"
BUILD = ROOT / "examples" / "support_intent_minilm" / "build.py"
SECTION = "distill"


def teacher_into(folder: Path) -> None:
    """The teacher in `folder`: linked from model_repository/ when built there, else built."""
    if (TEACHER / "1" / "model.onnx").is_file():
        shutil.copytree(TEACHER, folder, ignore=shutil.ignore_patterns("model.onnx"))
        (folder / "1" / "model.onnx").symlink_to(TEACHER / "1" / "model.onnx")
        return
    print("building the teacher (examples/support_intent_minilm/build.py)", flush=True)
    subprocess.run([sys.executable, str(BUILD), "--out", str(folder)], check=True, cwd=ROOT)


def eval_count(model_dir: Path) -> int:
    return len(eval_instances(load_model(model_dir)))


def run(work: Path) -> list[Figure]:
    repo = work / "repo"
    repo.mkdir()
    shutil.copytree(STUDENT, repo / "support-intent")
    teacher_into(repo / "support-intent-minilm")
    made = distill(
        repo, "support-intent", "support-intent-minilm", cache=work / "cache", seconds=5.0
    )
    for warning in made.warnings:
        print(f"warning: {warning}")
    measured = made.variant.measured
    settings = made.variant.settings
    teacher = measured["teacher"]
    print(
        f"student v{made.version}: T={settings['temperature']} alpha={settings['alpha']} "
        f"epochs={settings['epochs']} labelled={settings['labelled']} "
        f"unlabeled={settings['unlabeled']}"
    )
    return [
        figure(
            SECTION, "distill: teacher accuracy (MiniLM)", teacher["value"], "acc", fmt="{:.4f}"
        ),
        figure(
            SECTION,
            "distill: student trained on labels alone, accuracy",
            measured["labels_only"]["value"],
            "acc",
        ),
        figure(
            SECTION,
            "distill: distilled student accuracy (within 3 pts of the teacher)",
            measured["value"],
            "acc",
            ">=",
            teacher["value"] - 0.03,
            fmt="{:.4f}",
        ),
        figure(
            SECTION,
            "distill: distilled minus labels-alone accuracy (at least one more right)",
            measured["value"] - measured["labels_only"]["value"],
            "acc",
            ">=",
            1 / eval_count(repo / "support-intent"),
            fmt="{:.4f}",
        ),
        figure(SECTION, "distill: teacher ms per batch of 8", teacher["ms_per_batch"], "ms"),
        figure(
            SECTION, "distill: student ms per batch of 8", teacher["student_ms_per_batch"], "ms"
        ),
        figure(
            SECTION,
            "distill: student throughput / teacher's at batch 8",
            teacher["speedup"],
            "x",
            ">=",
            5.0,
        ),
    ]
