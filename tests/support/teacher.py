"""The on-demand teacher (support-intent-minilm), built once per test session: quantizing,
distilling and cascading are tested on it, as the issue's worked example is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "examples" / "support_intent_minilm" / "build.py"


def build_teacher(out: Path) -> Path:
    """Build support-intent-minilm into `out` (a model folder); ~30-60 s on 2 cores."""
    built = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return out
