"""TextStream with a real byte-level BPE, where one character can span several tokens: the
deltas add up to the whole decode, never show a broken character, and never show a stop string,
even one split over tokens."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from inferd.generate.text import TextStream
from tests.support.tiny_lm import byte_level_tokenizer

BROKEN = "\ufffd"
MIXED = "héllo wörld ✓ 日本 and 🙂 then 🎉🐍 done"
TEXTS = [MIXED, "x = 1\n    return json.dumps(obj)\n", "日本語のテキスト"]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return byte_level_tokenizer()


def _ids(tokenizer: Tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False).ids)


def _pushed(tokenizer: Tokenizer, text: str, stop: tuple[str, ...] = ()) -> list[str]:
    """The deltas of pushing the text's tokens one at a time (finish() not called)."""
    stream = TextStream(tokenizer, stop)
    return [stream.push(token) for token in _ids(tokenizer, text)]


def _before_stop(text: str, stop: tuple[str, ...]) -> str:
    return text[: min(text.find(s) for s in stop if s in text)]


def test_the_tokenizer_splits_characters_over_tokens(tokenizer: Tokenizer) -> None:
    """The premise of the tests below: some tokens alone decode to a broken character."""
    assert any(BROKEN in tokenizer.decode([token]) for token in _ids(tokenizer, MIXED))


@pytest.mark.parametrize("text", TEXTS)
def test_deltas_add_up_to_the_whole_decode(tokenizer: Tokenizer, text: str) -> None:
    stream = TextStream(tokenizer)
    ids = _ids(tokenizer, text)
    deltas = [stream.push(token) for token in ids]
    assert "".join(deltas) + stream.finish() == tokenizer.decode(ids) == text
    assert stream.text == text


@pytest.mark.parametrize("text", TEXTS)
def test_no_delta_shows_a_broken_character(tokenizer: Tokenizer, text: str) -> None:
    assert not any(BROKEN in delta for delta in _pushed(tokenizer, text))


def test_text_is_released_as_soon_as_its_characters_are_complete(tokenizer: Tokenizer) -> None:
    """After each token the client has everything but an unfinished last character."""
    stream = TextStream(tokenizer)
    ids = _ids(tokenizer, MIXED)
    given = ""
    for count, token in enumerate(ids, start=1):
        given += stream.push(token)
        assert given == tokenizer.decode(ids[:count]).rstrip(BROKEN)


def test_finish_gives_an_unfinished_character_as_a_replacement(tokenizer: Tokenizer) -> None:
    """A sequence cut off (max_tokens) mid-character still ends with all its tokens' text."""
    ids = _ids(tokenizer, "ab日")[:-1]
    stream = TextStream(tokenizer)
    given = "".join(stream.push(token) for token in ids)
    assert given == "ab"
    rest = stream.finish()
    assert given + rest == tokenizer.decode(ids)
    assert BROKEN in rest


# --- stop strings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "stop"),
    [
        (MIXED, "✓"),  # one character, three byte tokens
        (MIXED, "wörld"),
        ("a = dumps(obj)", "mps(o"),
    ],
)
def test_a_stop_string_split_over_tokens_is_cut(tokenizer: Tokenizer, text: str, stop: str) -> None:
    assert not any(stop in tokenizer.decode([token]) for token in _ids(tokenizer, text))
    stream = TextStream(tokenizer, (stop,))
    given = "".join(stream.push(token) for token in _ids(tokenizer, text))
    assert given == _before_stop(text, (stop,))
    assert stream.stopped
    assert stream.finish() == ""


@pytest.mark.parametrize(("text", "stop"), [(MIXED, "✓"), (MIXED, "wörld"), (MIXED, " 日本")])
def test_no_delta_contains_any_part_of_the_stop_string(
    tokenizer: Tokenizer, text: str, stop: str
) -> None:
    """Held-back text that turns into a stop string is never given out, not even partly."""
    given = ""
    for delta in _pushed(tokenizer, text, (stop,)):
        given += delta
        assert _before_stop(text, (stop,)).startswith(given)


def test_tokens_after_the_stop_give_nothing(tokenizer: Tokenizer) -> None:
    stream = TextStream(tokenizer, ("wörld",))
    ids = _ids(tokenizer, MIXED)
    deltas = [stream.push(token) for token in ids]
    stopped_at = next(i for i, _ in enumerate(ids) if "wörld" in tokenizer.decode(ids[: i + 1]))
    assert deltas[stopped_at + 1 :] == [""] * (len(ids) - stopped_at - 1)
    assert stream.text == _before_stop(MIXED, ("wörld",))


def test_the_earliest_of_several_stop_strings_wins(tokenizer: Tokenizer) -> None:
    """One token can complete two stop strings at once; the text ends before the first in the
    text, not the first in the list."""
    text = "x = 1\n    return value"
    assert " return" in [tokenizer.decode([token]) for token in _ids(tokenizer, text)]
    stop = ("rn", "et")
    given = "".join(_pushed(tokenizer, text, stop))
    assert given == _before_stop(text, stop) == "x = 1\n    r"


def test_a_possible_stop_prefix_is_held_then_released_by_finish(tokenizer: Tokenizer) -> None:
    """The text might go on into the stop string, so its start waits; when the sequence ends
    for another reason, finish() gives it out."""
    text = "the en"
    stream = TextStream(tokenizer, (" end.",))
    given = "".join(stream.push(token) for token in _ids(tokenizer, text))
    assert given == "the"
    assert stream.finish() == " en"
    assert not stream.stopped


def test_a_held_prefix_is_released_once_the_text_moves_past_it(tokenizer: Tokenizer) -> None:
    text = "an ending"
    stream = TextStream(tokenizer, (" end.",))
    assert "".join(stream.push(token) for token in _ids(tokenizer, text)) == text
    assert stream.finish() == ""
