"""Fixtures both the unit and the end-to-end tests use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.teacher import build_teacher


@pytest.fixture(scope="session")
def teacher_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly built support-intent-minilm model folder, shared by the session: copy it
    (or symlink its 86 MiB 1/model.onnx) before changing anything in it."""
    return build_teacher(tmp_path_factory.mktemp("teacher") / "support-intent-minilm")
