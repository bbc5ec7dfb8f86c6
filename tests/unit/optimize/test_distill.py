"""Distilling the MiniLM support-intent teacher into the bundled support-intent model, through
its recipe; bad input fails clearly and writes nothing."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from examples.support_intent.recipe import recipe, serving_encode, variants
from inferd.errors import NotFoundError, SpecError
from inferd.optimize.distill import distill
from inferd.optimize.evaluate import evaluate, load_examples
from inferd.optimize.export import onnx_session
from inferd.optimize.teacher import teacher_logits
from inferd.optimize.variants import Made
from inferd.repository import load_model

ROOT = Path(__file__).resolve().parents[3]
STUDENT = ROOT / "model_repository" / "support-intent"


def make_repo(root: Path, teacher: Path) -> Path:
    """A repository with a copy of support-intent and of the teacher (its onnx linked)."""
    shutil.copytree(STUDENT, root / "support-intent")
    copy = root / "support-intent-minilm"
    shutil.copytree(teacher, copy, ignore=shutil.ignore_patterns("model.onnx"))
    (copy / "1" / "model.onnx").symlink_to(teacher / "1" / "model.onnx")
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b""
        for p in sorted(folder.rglob("*"))
    }


@dataclass
class Distilled:
    repo: Path
    made: Made


@pytest.fixture(scope="module")
def distilled(tmp_path_factory: pytest.TempPathFactory, teacher_model: Path) -> Distilled:
    repo = make_repo(tmp_path_factory.mktemp("repo"), teacher_model)
    made = distill(
        repo,
        "support-intent",
        "support-intent-minilm",
        epochs=60,  # the recipe's own: the labels-only student is then version 1 again
        unlabeled=40,
        cache=tmp_path_factory.mktemp("cache"),
        seconds=0.3,
    )
    return Distilled(repo, made)


def test_the_distilled_student_is_written_as_a_recorded_unserved_version(
    distilled: Distilled,
) -> None:
    made = distilled.made
    folder = distilled.repo / "support-intent"
    assert made.version == 2 and made.served == (1,)
    assert (folder / "2" / "model.onnx").is_file()
    assert not list(folder.glob(".variant-*"))
    record = load_model(folder).spec.variants[2]  # type: ignore[union-attr]
    assert record.method == "distill" and record.source == 1
    assert record.settings["teacher"] == "support-intent-minilm"
    assert record.settings["teacher_version"] == 1
    assert record.settings["epochs"] == 60 and record.settings["unlabeled"] == 40
    assert record.settings["temperature"] > 0 and 0 <= record.settings["alpha"] <= 1
    assert "torch" in record.tools and "onnxruntime" in record.tools


def test_the_record_holds_what_the_versions_measure(distilled: Distilled) -> None:
    folder = distilled.repo / "support-intent"
    measured = distilled.made.variant.measured
    entry = load_model(folder, only=[1, 2])
    assert measured["value"] == pytest.approx(evaluate(entry, version=2).value, abs=1e-6)
    assert measured["source_value"] == pytest.approx(evaluate(entry, version=1).value, abs=1e-6)
    teacher = load_model(distilled.repo / "support-intent-minilm")
    assert measured["teacher"]["value"] == pytest.approx(evaluate(teacher).value, abs=1e-6)
    assert measured["teacher"]["train_agreement"] > 0.9


def test_labels_alone_with_the_same_recipe_and_epochs_is_the_source_again(
    distilled: Distilled,
) -> None:
    """The fair baseline: trained in the run, it scores what the committed version does."""
    measured = distilled.made.variant.measured
    assert measured["labels_only"]["value"] == pytest.approx(measured["source_value"], abs=1e-6)


def test_the_student_is_far_faster_than_its_teacher(distilled: Distilled) -> None:
    teacher = distilled.made.variant.measured["teacher"]
    assert teacher["speedup"] > 5
    assert teacher["ms_per_batch"] > teacher["student_ms_per_batch"]


def test_teacher_logits_are_cached(tmp_path: Path, teacher_model: Path) -> None:
    entry = load_model(teacher_model)
    model = entry.versions[1]
    texts = ["i was charged twice", "where is my parcel", "reset my password please"]
    first, cached = teacher_logits(entry, model, texts, cache=tmp_path)
    assert not cached and first.shape == (3, 10)
    again, cached = teacher_logits(entry, model, texts, cache=tmp_path)
    assert cached and np.array_equal(first, again)
    other, cached = teacher_logits(entry, model, texts[:2], cache=tmp_path)
    assert not cached and np.allclose(other, first[:2], atol=1e-4)
    model.close()


# --- the recipe -----------------------------------------------------------------------------


def test_the_recipe_builds_a_version_s_weights_from_its_onnx() -> None:
    made = recipe()
    model = made.build(STUDENT / "1" / "model.onnx")
    texts = made.load_data().instances[:20]
    ids, mask = serving_encode(made.tokenizer, texts)
    want = onnx_session(STUDENT / "1" / "model.onnx").run(
        ["logits"], {"input_ids": ids, "attention_mask": mask}
    )[0]
    got = model(*made.encode(texts, None)).detach().numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert any(p.requires_grad for p in model.parameters())


def test_the_unlabeled_variants_are_new_and_the_same_every_run() -> None:
    data = recipe().load_data()
    assert len(data.instances) == len(data.targets) == 552
    assert not set(data.unlabeled) & set(data.instances)
    assert len(set(data.unlabeled)) == len(data.unlabeled) > len(data.instances)
    assert variants(data.instances[:30], 2) == variants(data.instances[:30], 2)
    held_out = {instance for instance, _ in load_examples(STUDENT / "eval" / "test.jsonl")}
    assert not held_out & set(data.instances)  # the training split, never the eval data


# --- bad input ------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path, teacher_model: Path) -> Path:
    return make_repo(tmp_path / "repo", teacher_model)


def refused(repo: Path, teacher: str, error: type[Exception], match: str) -> None:
    before = snapshot(repo / "support-intent")
    with pytest.raises(error, match=match):
        distill(repo, "support-intent", teacher, epochs=1, cache=repo.parent / "cache")
    assert snapshot(repo / "support-intent") == before


def test_an_unknown_teacher_lists_the_models(repo: Path) -> None:
    refused(repo, "minilm", NotFoundError, "unknown teacher 'minilm'.*support-intent-minilm")


def test_the_student_cannot_teach_itself(repo: Path) -> None:
    refused(repo, "support-intent", SpecError, "another model")


def test_a_teacher_with_other_labels_says_which(repo: Path) -> None:
    labels = repo / "support-intent-minilm" / "labels.txt"
    labels.write_text(labels.read_text().replace("refund\n", "refunds\n"))
    refused(repo, "support-intent-minilm", SpecError, "only support-intent has refund.*refunds")


def test_a_teacher_with_the_labels_in_another_order(repo: Path) -> None:
    labels = repo / "support-intent-minilm" / "labels.txt"
    labels.write_text("".join(reversed(labels.read_text().splitlines(keepends=True))))
    refused(repo, "support-intent-minilm", SpecError, "another order")


def test_a_model_without_a_recipe(repo: Path) -> None:
    spec = repo / "support-intent" / "model.yaml"
    spec.write_text(spec.read_text().replace("recipe: examples.support_intent.recipe\n", ""))
    refused(repo, "support-intent-minilm", SpecError, "names no training recipe")


def test_a_model_without_eval_data(repo: Path) -> None:
    spec = repo / "support-intent" / "model.yaml"
    text = spec.read_text()
    spec.write_text(text.replace(text[text.index("eval:") : text.index("recipe:")], ""))
    refused(repo, "support-intent-minilm", SpecError, "no eval: section")
