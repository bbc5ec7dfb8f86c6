"""Repositories the CLI tests run against, and consoles wide enough not to wrap."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from inferd.cli import common
from tests.support import onnx_models


@pytest.fixture(autouse=True)
def wide_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at 80 columns when not on a terminal; long paths and tables must not wrap."""
    monkeypatch.setattr(common, "console", Console(width=400))
    monkeypatch.setattr(common, "err_console", Console(stderr=True, width=400))


HOUSE_YAML = """\
task: regression
inputs:
  - {name: rooms, datatype: FP64, shape: [1]}
  - {name: area, datatype: FP64, shape: [1]}
  - {name: age, datatype: FP64, shape: [1]}
preprocess:
  - {type: tabular, features: [rooms, area, age]}
postprocess:
  - {type: regress, names: [price], mean: [100.0], std: [10.0]}
"""


DIGITS_YAML = """\
task: classification
inputs:
  - {name: image, datatype: BYTES, shape: [1]}
preprocess:
  - {type: image, color: L, size: [8, 8]}
postprocess:
  - {type: classify, top_k: 2}
labels: [zero, one, two]
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    onnx_models.affine(root / "aff" / "1" / "model.onnx")
    onnx_models.linear_regressor(root / "house" / "1" / "model.onnx", features=3)
    (root / "house" / "model.yaml").write_text(HOUSE_YAML, encoding="utf-8")
    onnx_models.image_classifier(root / "digits" / "1" / "model.onnx")
    (root / "digits" / "model.yaml").write_text(DIGITS_YAML, encoding="utf-8")
    return root


@pytest.fixture
def broken_repo(repo: Path) -> Path:
    (repo / "bad").mkdir()
    (repo / "bad" / "model.yaml").write_text(
        "name: bad\nbatching: {max_batch: 2}\n", encoding="utf-8"
    )
    (repo / "bad" / "1").mkdir()
    return repo
