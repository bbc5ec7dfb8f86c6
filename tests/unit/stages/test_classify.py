"""Classification postprocessing: softmax when needed, top-k with names, label checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from inferd.errors import ModelError
from inferd.spec import ClassifyStage
from inferd.stages import classify


def _run(scores: Any, labels: list[str] | None = None, **options: Any) -> Any:
    stage = ClassifyStage(type="classify", **options)
    return classify.build(stage, "logits", labels).run({"logits": np.asarray(scores)}, {})


def _softmax(scores: list[float]) -> np.ndarray:
    exp = np.exp(np.asarray(scores, dtype=np.float64))
    return exp / exp.sum()


def test_auto_softmax_on_logits() -> None:
    logits = [2.0, -1.0, 0.5]
    prediction = _run(logits)
    expected = _softmax(logits)
    np.testing.assert_allclose(prediction.tensors["probabilities"], expected, rtol=1e-6)
    assert prediction.fields["label"] == "0"
    assert prediction.fields["score"] == pytest.approx(expected[0])


def test_auto_keeps_probabilities() -> None:
    probabilities = [0.1, 0.7, 0.2]
    prediction = _run(probabilities)
    np.testing.assert_allclose(prediction.tensors["probabilities"], probabilities, rtol=1e-6)
    assert prediction.fields["score"] == pytest.approx(0.7)


def test_auto_treats_non_normalised_unit_scores_as_logits() -> None:
    scores = [0.9, 0.8, 0.1]  # in [0, 1] but summing to 1.8: not probabilities
    prediction = _run(scores)
    np.testing.assert_allclose(prediction.tensors["probabilities"], _softmax(scores), rtol=1e-6)


def test_softmax_forced_on_probabilities() -> None:
    probabilities = [0.1, 0.7, 0.2]
    prediction = _run(probabilities, softmax=True)
    np.testing.assert_allclose(
        prediction.tensors["probabilities"], _softmax(probabilities), rtol=1e-6
    )


def test_softmax_off_keeps_raw_scores() -> None:
    prediction = _run([3.0, 5.0, -2.0], softmax=False)
    assert prediction.fields["score"] == 5.0
    assert prediction.fields["label"] == "1"


def test_softmax_is_stable_for_huge_logits() -> None:
    prediction = _run([1000.0, 999.0])
    expected = _softmax([1.0, 0.0])
    np.testing.assert_allclose(prediction.tensors["probabilities"], expected, rtol=1e-6)


def test_top_k_order_and_label_names() -> None:
    labels = ["cat", "dog", "bird", "fish"]
    prediction = _run([0.1, 0.4, 0.3, 0.2], labels, top_k=3)
    top = prediction.fields["top_k"]
    assert [t["label"] for t in top] == ["dog", "bird", "fish"]
    assert [t["score"] for t in top] == pytest.approx([0.4, 0.3, 0.2])
    assert prediction.fields["label"] == "dog"
    assert prediction.fields["score"] == pytest.approx(0.4)


def test_ties_keep_class_order() -> None:
    top = _run([0.25, 0.25, 0.25, 0.25], ["a", "b", "c", "d"], top_k=4).fields["top_k"]
    assert [t["label"] for t in top] == ["a", "b", "c", "d"]


def test_fewer_classes_than_top_k() -> None:
    top = _run([0.3, 0.7], ["no", "yes"], top_k=5).fields["top_k"]
    assert [t["label"] for t in top] == ["yes", "no"]


def test_scores_with_a_leading_unit_axis_are_flattened() -> None:
    prediction = _run([[0.2, 0.8]], ["a", "b"])
    assert prediction.fields["label"] == "b"


def test_label_count_mismatch_is_a_model_error() -> None:
    with pytest.raises(ModelError) as caught:
        _run([0.2, 0.3, 0.5], ["a", "b"])
    assert caught.value.message == (
        "model output 'logits' has 3 scores but 2 labels are configured; "
        "fix the labels file or the model"
    )


def test_tensors() -> None:
    prediction = _run([0.1, 0.9], ["neg", "pos"])
    tensors = prediction.tensors
    assert set(tensors) == {"label", "score", "probabilities"}
    assert tensors["label"].dtype == np.object_
    assert tensors["label"].tolist() == [b"pos"]
    assert tensors["score"].dtype == np.float32
    assert tensors["score"].tolist() == pytest.approx([0.9])
    assert tensors["probabilities"].dtype == np.float32
    assert tensors["probabilities"].shape == (2,)


def test_output_specs_describe_the_tensors() -> None:
    stage = ClassifyStage(type="classify")
    specs = classify.build(stage, "logits", ["a", "b", "c"]).outputs
    assert [(s.name, s.datatype, s.shape) for s in specs] == [
        ("label", "BYTES", [1]),
        ("score", "FP32", [1]),
        ("probabilities", "FP32", [3]),
    ]
    unlabelled = classify.build(stage, "logits", None).outputs
    assert unlabelled[2].shape == [-1]
