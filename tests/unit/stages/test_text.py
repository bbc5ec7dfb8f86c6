"""The text stage: one text → token tensors, truncation noted, padding left to the batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inferd.errors import BadRequestError, SpecError
from inferd.spec import TextStage
from inferd.stages import text
from tests.support.onnx_models import word_tokenizer
from tests.support.stages import apply

WORDS = ["my", "card", "was", "charged", "twice", "refund", "please"]


def _stage(**options: object) -> TextStage:
    return TextStage.model_validate({"type": "text", **options})


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    word_tokenizer(tmp_path / "tokenizer.json", WORDS)
    return tmp_path


def test_text_becomes_ids_and_mask(folder: Path) -> None:
    step, pads = text.build(_stage(), "text", folder)
    done = apply(step, {"text": np.array([b"My card was CHARGED twice"], dtype=object)})
    item = done.values
    np.testing.assert_array_equal(item["input_ids"], [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(item["attention_mask"], [1, 1, 1, 1, 1])
    assert item["input_ids"].dtype == np.int64
    assert "text" not in item and not done.notes
    assert pads == {"input_ids": 0, "attention_mask": 0}


def test_unknown_words_and_token_type_ids_under_model_names(folder: Path) -> None:
    stage = _stage(
        outputs={"input_ids": "ids", "token_type_ids": "types"}, datatype="INT32", pad_id=9
    )
    step, pads = text.build(stage, "text", folder)
    item = apply(step, {"text": "refund xyzzy"}).values
    np.testing.assert_array_equal(item["ids"], [7, 1])
    np.testing.assert_array_equal(item["types"], [0, 0])
    assert item["ids"].dtype == np.int32
    assert pads == {"ids": 9, "types": 0}


def test_long_text_is_truncated_and_noted(folder: Path) -> None:
    step, _ = text.build(_stage(max_length=3), "text", folder)
    done = apply(step, {"text": "my card was charged twice"})
    np.testing.assert_array_equal(done.values["input_ids"], [2, 3, 4])
    assert done.notes == {"truncated_to_tokens": 3}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        (b"\xff\xfe", "not UTF-8"),
        (np.array([b"a", b"b"], dtype=object), "one text per item"),
        (3.5, "takes text"),
    ],
)
def test_bad_text_is_a_400(folder: Path, value: object, words: str) -> None:
    step, _ = text.build(_stage(), "text", folder)
    with pytest.raises(BadRequestError, match=words):
        apply(step, {"text": value})


def test_missing_or_broken_tokenizer_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        text.build(_stage(), "text", tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not a tokenizer")
    with pytest.raises(SpecError, match=r"not a tokenizers tokenizer\.json"):
        text.build(_stage(), "text", tmp_path)
    with pytest.raises(SpecError, match="model folder"):
        text.build(_stage(), "text", None)


def test_outputs_must_include_input_ids() -> None:
    with pytest.raises(ValueError, match="input_ids"):
        _stage(outputs={"attention_mask": "mask"})
