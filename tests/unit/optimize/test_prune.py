"""Structured pruning of the real digits CNN (on a copy), and the inputs it refuses."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pytest

from inferd.errors import BadRequestError, NotFoundError, SpecError
from inferd.hardware import cpu
from inferd.optimize.evaluate import evaluate
from inferd.optimize.measure import Comparison, Speed, eval_instances
from inferd.optimize.prune import judge, kept, kept_whole, prune
from inferd.optimize.variants import Made
from inferd.repository import load_model
from inferd.spec import load_spec
from inferd.stages import Prediction

pytest.importorskip("torch_pruning", reason="pruning needs the optimize extra")
onnx = pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[3]
REPO = ROOT / "model_repository"
SEVEN = ROOT / "examples" / "digits" / "samples" / "seven.png"


def copy_model(name: str, repo: Path) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(REPO / name, repo / name))


def parameters(onnx_path: Path) -> dict[str, tuple[int, ...]]:
    graph = onnx.load(str(onnx_path)).graph
    return {t.name: tuple(t.dims) for t in graph.initializer if len(t.dims) > 1}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too), to show nothing was written."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Made]:
    """digits pruned by half with one short fine-tune: shared by the tests that read it."""
    repo = tmp_path_factory.mktemp("repo")
    copy_model("digits", repo)
    made = prune(repo, "digits", 0.5, epochs=1, allow_slower=True, batch=32, seconds=0.5)
    return repo / "digits", made


def test_the_variant_has_half_the_channels_and_fewer_weights(pruned: tuple[Path, Made]) -> None:
    model_dir, made = pruned
    assert made.version == 2 and made.variant.method == "prune" and made.variant.source == 1
    before = parameters(model_dir / "1" / "model.onnx")
    after = parameters(model_dir / "2" / "model.onnx")
    convs = [name for name, dims in before.items() if len(dims) == 4]
    assert len(convs) == 4
    halved = [name for name in convs if after[name][0] == before[name][0] // 2]
    whole = [name for name in convs if after[name][0] == before[name][0]]
    # the recipe keeps the first block whole (keep_whole); the second block is halved
    assert len(halved) == 2 and len(whole) == 2
    count_before = sum(int(np.prod(d)) for d in before.values())
    count_after = sum(int(np.prod(d)) for d in after.values())
    assert count_after < count_before / 2
    settings = made.variant.settings
    assert settings["ratio"] == 0.5 and settings["criterion"] == "group-l2-magnitude"
    assert settings["channels_multiple_of"] == 8
    assert settings["kept_whole"] == ["layers.0", "layers.3"]
    assert settings["widths_after"]["layers.0"] == settings["widths_before"]["layers.0"]
    assert settings["widths_after"]["layers.7"] == settings["widths_before"]["layers.7"] // 2
    assert settings["parameters_after"] < settings["parameters_before"] / 2
    assert settings["widths_after"]["layers.18"] == 10  # the output layer keeps every class
    assert settings["fine_tune"]["epochs"] == 1 and settings["fine_tune"]["lr"] > 0
    assert {"torch", "torch-pruning", "onnx", "onnxruntime"} <= set(made.variant.tools)


def test_the_variant_is_recorded_with_what_it_measured(pruned: tuple[Path, Made]) -> None:
    model_dir, made = pruned
    spec = load_spec(model_dir)
    assert spec is not None and spec.variants[2] == made.variant
    measured = made.variant.measured
    assert measured["metric"] == "accuracy" and measured["batch"] == 32
    assert measured["source_value"] == 1.0 and 0.0 <= measured["value"] <= 1.0
    assert measured["ms_per_batch"] > 0 and measured["source_ms_per_batch"] > 0
    assert measured["cpu"] == cpu().describe()
    assert spec.versions == [1] and made.served == (1,)  # written, not served by itself


def test_the_variant_loads_serves_and_scores_what_was_recorded(pruned: tuple[Path, Made]) -> None:
    model_dir, made = pruned
    entry = load_model(model_dir, only=[2])
    assert not entry.errors
    report = evaluate(entry, version=2)
    assert report.value == pytest.approx(made.variant.measured["value"], abs=1e-6)
    instance = {"b64": base64.b64encode(SEVEN.read_bytes()).decode()}
    [prediction] = entry.versions[2].predictive.predict_instances([instance])
    assert isinstance(prediction, Prediction)
    assert prediction.fields["label"] in [str(d) for d in range(10)]
    assert len(prediction.fields["top_k"]) == 3  # top_k: 3, as the source answers


def test_the_recipe_rebuilds_the_pruned_variant(pruned: tuple[Path, Made]) -> None:
    from examples.digits.recipe import recipe
    from inferd.optimize.export import check_onnx, onnx_session

    model_dir, _ = pruned
    path = model_dir / "2" / "model.onnx"
    net = recipe().build(path)
    (inputs,) = recipe().encode(eval_instances(load_model(model_dir, only=[2]))[:64], None)
    assert check_onnx(onnx_session(path), net, {"image_tensor": inputs.numpy()}) < 1e-4


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.2, 1.5])
def test_a_ratio_outside_0_1_is_refused(tmp_path: Path, ratio: float) -> None:
    model_dir = copy_model("digits", tmp_path / "repo")
    before = snapshot(model_dir)
    with pytest.raises(BadRequestError, match="between 0 and 1"):
        prune(tmp_path / "repo", "digits", ratio, epochs=1)
    assert snapshot(model_dir) == before


def edited(model_dir: Path, drop: str = "", add: str = "") -> None:
    path = model_dir / "model.yaml"
    lines = [
        line for line in path.read_text().splitlines() if not drop or not line.startswith(drop)
    ]
    path.write_text("\n".join([*lines, add]) + "\n")


def test_a_model_without_a_recipe_is_refused(tmp_path: Path) -> None:
    model_dir = copy_model("digits", tmp_path / "repo")
    edited(model_dir, drop="recipe:")
    before = snapshot(model_dir)
    with pytest.raises(SpecError, match="recipe"):
        prune(tmp_path / "repo", "digits", 0.5, epochs=1)
    assert snapshot(model_dir) == before


def test_a_model_without_eval_data_is_refused(tmp_path: Path) -> None:
    model_dir = copy_model("digits", tmp_path / "repo")
    edited(model_dir, drop="eval:")
    before = snapshot(model_dir)
    with pytest.raises(SpecError, match="eval"):
        prune(tmp_path / "repo", "digits", 0.5, epochs=1)
    assert snapshot(model_dir) == before


def test_a_regression_model_is_refused(tmp_path: Path) -> None:
    model_dir = copy_model("diabetes", tmp_path / "repo")
    edited(model_dir, add="recipe: examples.digits.recipe")
    before = snapshot(model_dir)
    with pytest.raises(SpecError, match="classification"):
        prune(tmp_path / "repo", "diabetes", 0.5, epochs=1)
    assert snapshot(model_dir) == before


def test_a_model_its_recipe_cannot_rebuild_is_refused(tmp_path: Path) -> None:
    model_dir = copy_model("breast-cancer", tmp_path / "repo")
    edited(model_dir, add="recipe: examples.digits.recipe")
    before = snapshot(model_dir)
    with pytest.raises(SpecError):  # other labels, and a graph that is no DigitNet
        prune(tmp_path / "repo", "breast-cancer", 0.5, epochs=1)
    assert snapshot(model_dir) == before


def test_an_unknown_model_is_refused(tmp_path: Path) -> None:
    copy_model("digits", tmp_path / "repo")
    with pytest.raises(NotFoundError, match="nodigits"):
        prune(tmp_path / "repo", "nodigits", 0.5, epochs=1)


def comparison(ms: float, source_ms: float, value: float = 1.0) -> Comparison:
    return Comparison("accuracy", value, 1.0, Speed(32, ms), Speed(32, source_ms), "cpu")


def test_a_slower_variant_is_refused_unless_allowed() -> None:
    with pytest.raises(BadRequestError, match=r"slower.*--allow-slower"):
        judge(comparison(ms=2.0, source_ms=1.0), allow_slower=False)
    [warning] = judge(comparison(ms=2.0, source_ms=1.0), allow_slower=True)
    assert "slower" in warning and "0.50x" in warning
    assert judge(comparison(ms=0.5, source_ms=1.0), allow_slower=False) == []


def test_a_large_accuracy_drop_is_warned_about() -> None:
    [warning] = judge(comparison(ms=0.5, source_ms=1.0, value=0.9), allow_slower=False)
    assert "accuracy fell from 1.0000 to 0.9000" in warning


def test_each_layer_keeps_a_multiple_of_8_channels_near_its_share() -> None:
    assert [kept(width, 0.5, 8) for width in (16, 32, 64)] == [8, 16, 32]
    assert [kept(width, 0.25, 8) for width in (16, 32, 64)] == [16, 24, 48]
    assert kept(16, 0.9, 8) == 8  # never below the multiple
    assert kept(16, 0.01, 8) == 16  # never above the width
    assert kept(5, 0.5, 8) == 2  # narrower than the multiple: the plain share


def test_a_recipe_keeping_a_layer_the_model_lacks_is_refused() -> None:
    from examples.digits.recipe import DigitNet, DigitsRecipe

    class Misnamed(DigitsRecipe):
        keep_whole = ("layers.0", "stem.conv")

    net = DigitNet()
    assert kept_whole(DigitsRecipe(), net, "layers.18") == ["layers.18", "layers.0", "layers.3"]
    with pytest.raises(SpecError, match=r"stem\.conv"):
        kept_whole(Misnamed(), net, "layers.18")
