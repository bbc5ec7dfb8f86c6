"""Training recipes: found by module name from the repository's folder, and the digits recipe
rebuilding the shipped model exactly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from inferd.errors import SpecError
from inferd.optimize.measure import eval_instances
from inferd.optimize.recipe import load_recipe
from inferd.repository import load_model
from inferd.spec import load_spec

pytest.importorskip("torch")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[3]
REPO = ROOT / "model_repository"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As `inferd` started as a console script in another folder: the checkout is not on the
    Python path and no example module is imported yet."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != ROOT])
    for name in [n for n in sys.modules if n == "examples" or n.startswith("examples.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.usefixtures("elsewhere")
def test_a_recipe_is_found_beside_the_model_repository() -> None:
    spec = load_spec(REPO / "digits")
    assert spec is not None and spec.recipe == "examples.digits.recipe"
    recipe = load_recipe(spec, REPO)
    assert type(recipe).__module__ == "examples.digits.recipe"
    assert str(ROOT) not in sys.path  # taken off the path again


@pytest.mark.usefixtures("elsewhere")
def test_a_recipe_not_found_says_where_it_was_looked_for(tmp_path: Path) -> None:
    spec = load_spec(REPO / "digits")
    assert spec is not None
    with pytest.raises(SpecError, match=r"examples\.digits\.recipe.*cannot be imported"):
        load_recipe(spec, tmp_path / "model_repository")


def test_the_digits_recipe_rebuilds_the_shipped_model() -> None:
    from examples.digits.recipe import DigitNet, recipe
    from inferd.optimize.export import check_onnx, onnx_session

    path = REPO / "digits" / "1" / "model.onnx"
    net = recipe().build(path)
    assert isinstance(net, DigitNet) and not net.training
    (inputs,) = recipe().encode(eval_instances(load_model(REPO / "digits")), None)
    # Every eval image, at batch sizes 1, 7, 64 and 360: torch computes what ONNX Runtime does.
    assert check_onnx(onnx_session(path), net, {"image_tensor": inputs.numpy()}) < 1e-4


def test_the_digits_recipe_refuses_a_graph_that_is_no_digitnet() -> None:
    from examples.digits.recipe import recipe

    with pytest.raises(SpecError, match="not an exported DigitNet"):
        recipe().build(REPO / "breast-cancer" / "1" / "model.onnx")


def test_the_digits_training_data_is_the_training_split() -> None:
    from examples.digits.recipe import recipe, split

    data = recipe().load_data()
    train_x, _, train_y, _ = split()
    assert len(data.instances) == len(data.targets) == len(train_x) == 1437
    assert data.targets == [str(int(y)) for y in train_y]
    (plain,) = recipe().encode(data.instances[:8], None)
    (augmented,) = recipe().encode(data.instances[:8], np.random.default_rng(0))
    assert plain.shape == augmented.shape == (8, 1, 16, 16)
    assert not np.allclose(plain.numpy(), augmented.numpy())
