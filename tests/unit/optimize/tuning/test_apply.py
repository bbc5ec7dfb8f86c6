"""--apply: the choice pinned in model.yaml, comments and layout kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from inferd.errors import SpecError
from inferd.optimize.tuning.apply import apply
from inferd.optimize.tuning.space import Config
from inferd.spec import load_spec

DIGITS = Path(__file__).resolve().parents[4] / "model_repository" / "digits"


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    folder = tmp_path / "digits"
    shutil.copytree(DIGITS, folder)
    return folder


def test_apply_pins_the_choice_and_keeps_comments(digits: Path) -> None:
    before = (digits / "model.yaml").read_text()
    apply(digits, Config(1, "cpu", 2, 16, 0.5))
    text = (digits / "model.yaml").read_text()
    assert "# The bundled image-classification example" in text
    assert "Send any grey or colour PNG/JPEG" in text
    spec = load_spec(digits)
    assert spec is not None
    assert spec.versions == [1]
    assert (spec.batching.max_batch_size, spec.batching.max_delay_ms) == (16, 0.5)
    assert spec.batching.max_queue == 2048  # what tune does not choose is kept
    assert (spec.runtime.threads, spec.runtime.device) == (2, "cpu")
    untouched = [
        line for line in before.splitlines() if not line.startswith(("batching", "runtime"))
    ]
    assert all(line in text for line in untouched)


def test_apply_adds_missing_sections(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.yaml").write_text("# mine\nname: m\n")
    apply(folder, Config(1, "cpu", 1, 8, 0.0))
    text = (folder / "model.yaml").read_text()
    assert text.startswith("# mine\n")
    spec = load_spec(folder)
    assert spec is not None and spec.batching.max_batch_size == 8 and spec.versions == [1]


def test_a_threshold_on_a_model_that_is_no_cascade_writes_nothing(digits: Path) -> None:
    before = (digits / "model.yaml").read_text()
    with pytest.raises(SpecError, match="cascade"):
        apply(digits, Config.cascade(0.8))
    assert (digits / "model.yaml").read_text() == before
