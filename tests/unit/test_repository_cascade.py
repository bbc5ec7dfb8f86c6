"""A cascade folder in a repository: linked to its members after they load, and every
mistake (members unknown, unloaded, mismatched or cascades themselves, a bad `when`)
recorded on the cascade with a message that says what to fix; the members still serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferd.errors import ModelNotReadyError
from inferd.repository import ModelRepository
from tests.support import cascades, onnx_models


def _errors(root: Path, name: str) -> list[str]:
    repository = ModelRepository(root)
    repository.load()
    entry = repository.entry(name)
    assert not entry.versions
    assert repository.entry("small").versions  # a broken cascade never stops its members
    with pytest.raises(ModelNotReadyError):
        repository.get(name)
    return entry.errors


def test_an_unknown_member_is_named(tmp_path: Path) -> None:
    cascades.repository(tmp_path)
    cascades.cascade(tmp_path, "c", "small", "huge", "confidence < 0.5")
    assert _errors(tmp_path, "c") == [
        "cascade 'c': its then model 'huge' is not a model of this repository; check the name"
    ]


def test_a_cascade_of_a_cascade_is_refused(tmp_path: Path) -> None:
    cascades.repository(tmp_path)
    cascades.cascade(tmp_path, "c", "cascade", "big", "confidence < 0.5")
    assert _errors(tmp_path, "c") == [
        "cascade 'c': its first model 'cascade' is itself a cascade; name plain models as members"
    ]


def test_members_with_other_inputs_are_refused_saying_what_differs(tmp_path: Path) -> None:
    cascades.repository(tmp_path)
    onnx_models.affine(tmp_path / "wide" / "1" / "model.onnx", features=5)
    cascades.write_yaml(
        tmp_path / "wide",
        {
            "task": "classification",
            "labels": cascades.LABELS,
            "postprocess": [{"type": "classify"}],
        },
    )
    cascades.cascade(tmp_path, "c", "small", "wide", "confidence < 0.5")
    (message,) = _errors(tmp_path, "c")
    assert message.startswith(
        "cascade 'c': its members 'small' and 'wide' differ in wire inputs "
        "(x FP32[4] and x FP32[5]); a cascade answers with either"
    )


def test_members_with_other_labels_are_refused_saying_which(tmp_path: Path) -> None:
    cascades.repository(tmp_path)
    cascades.classifier(tmp_path, "other", seed=1, labels=["setosa", "versicolor", "rose"])
    cascades.cascade(tmp_path, "c", "small", "other", "confidence < 0.5")
    (message,) = _errors(tmp_path, "c")
    assert "differ in labels (only 'small' has ['virginica'], only 'other' has ['rose'])" in message


def test_a_when_reading_unknown_names_is_refused(tmp_path: Path) -> None:
    cascades.repository(tmp_path)
    cascades.cascade(tmp_path, "c", "small", "big", "certainty < 0.5")
    (message,) = _errors(tmp_path, "c")
    assert message.startswith(
        "cascade 'c': cascade.when: unknown name 'certainty'; a rule can read"
    )
    assert "confidence" in message and "margin" in message


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ('label == "rose"', "compared with 'rose', which is not a label of this model"),
        ("inputs.y > 1", "'inputs.y' is not an input of this model; its inputs are x"),
        ("confidence < parameters.t", "cascade.when reads request parameters"),
        ("confidence <", "cascade.when:"),
    ],
)
def test_bad_whens_are_refused(tmp_path: Path, when: str, message: str) -> None:
    cascades.repository(tmp_path)
    cascades.cascade(tmp_path, "c", "small", "big", when)
    (error,) = _errors(tmp_path, "c")
    assert message in error


def test_a_cascade_with_version_folders_is_refused(tmp_path: Path) -> None:
    cascades.repository(tmp_path)
    onnx_models.affine(tmp_path / "cascade" / "1" / "model.onnx")
    (message,) = _errors(tmp_path, "cascade")
    assert "is a cascade (model.yaml `cascade:`) but has version folders [1]" in message


def test_a_cascade_whose_task_differs_from_its_members_is_refused(tmp_path: Path) -> None:
    cascades.repository(tmp_path)
    cascades.cascade(tmp_path, "c", "small", "big", "confidence < 0.5", task="regression")
    (message,) = _errors(tmp_path, "c")
    assert message == (
        "cascade 'c' says task regression but its members are classification models; make "
        "them the same or leave task out"
    )


def test_load_one_loads_a_cascades_members_too(tmp_path: Path) -> None:
    cascades.repository(tmp_path)
    repository = ModelRepository(tmp_path)
    entry = repository.load_one("cascade")
    assert list(entry.versions) == [1] and not entry.errors
    assert {e.name for e in repository.entries()} == {"cascade", "small", "big"}
