"""A private copy of the bundled digits model, for tests that write into a model folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DIGITS = ROOT / "model_repository" / "digits"


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    copy = tmp_path / "digits"
    shutil.copytree(DIGITS, copy)
    return copy
