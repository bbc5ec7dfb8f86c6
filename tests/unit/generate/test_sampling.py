"""Choosing the next token: the filters keep exactly the tokens they should, the repetition
penalty touches only seen tokens, seeded sampling repeats, and nonsense parameters are a 400."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import pytest
import torch

from inferd.errors import BadRequestError
from inferd.generate.request import SamplingParams
from inferd.generate.sampling import filter_top_k_top_p, next_token, penalize_repeats

PROBABILITIES = [0.15, 0.5, 0.05, 0.3]
"""Out of order on purpose: sorted, 0.5 (token 1), 0.3 (3), 0.15 (0), 0.05 (2); the mass of the
tokens before each in that order is 0, 0.5, 0.8 and 0.95."""
NOTHING_SEEN = torch.tensor([], dtype=torch.long)


def _logits() -> torch.Tensor:
    return torch.tensor([math.log(p) for p in PROBABILITIES])


def _kept(logits: torch.Tensor) -> set[int]:
    return {int(i) for i in torch.nonzero(logits > float("-inf")).flatten()}


def _draws(params: SamplingParams, seed: int, count: int = 20) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(50, generator=torch.Generator().manual_seed(1))
    return [next_token(logits, params, NOTHING_SEEN, generator) for _ in range(count)]


def test_greedy_is_the_argmax() -> None:
    logits = torch.randn(8, 100, generator=torch.Generator().manual_seed(0))
    greedy = SamplingParams(temperature=0)
    chosen = [next_token(row, greedy, NOTHING_SEEN, None) for row in logits]
    assert chosen == logits.argmax(dim=1).tolist()


def test_top_k_of_one_is_greedy_whatever_the_temperature_and_seed() -> None:
    logits = torch.randn(100, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(temperature=1.5, top_k=1)
    for seed in range(5):
        generator = torch.Generator().manual_seed(seed)
        assert next_token(logits, params, NOTHING_SEEN, generator) == int(logits.argmax())


@pytest.mark.parametrize(
    ("top_k", "kept"), [(1, {1}), (2, {1, 3}), (3, {0, 1, 3}), (4, {0, 1, 2, 3}), (0, {0, 1, 2, 3})]
)
def test_top_k_keeps_the_k_most_likely(top_k: int, kept: set[int]) -> None:
    assert _kept(filter_top_k_top_p(_logits(), top_k, 1.0)) == kept


@pytest.mark.parametrize(
    ("top_p", "kept"),
    [
        (0.4, {1}),  # the most likely token is always kept, even over top_p alone
        (0.75, {1, 3}),  # 0.5 before token 3 is under 0.75; 0.8 before token 0 is not
        (0.9, {0, 1, 3}),  # 0.8 before token 0 is under 0.9; 0.95 before token 2 is not
        (0.99, {0, 1, 2, 3}),
        (1.0, {0, 1, 2, 3}),
    ],
)
def test_top_p_keeps_the_smallest_nucleus_reaching_p(top_p: float, kept: set[int]) -> None:
    assert _kept(filter_top_k_top_p(_logits(), 0, top_p)) == kept


def test_top_p_applies_to_what_top_k_kept() -> None:
    """After top_k=2 the two tokens weigh 0.5/0.8 and 0.3/0.8: 0.625 before token 3 is over
    top_p 0.6, so it goes, though 0.5 before it in the whole distribution would keep it."""
    assert _kept(filter_top_k_top_p(_logits(), 0, 0.6)) == {1, 3}
    assert _kept(filter_top_k_top_p(_logits(), 2, 0.6)) == {1}


def test_sampling_never_picks_a_filtered_token() -> None:
    params = SamplingParams(temperature=1.0, top_k=3, top_p=0.75)
    generator = torch.Generator().manual_seed(0)
    picked = {next_token(_logits(), params, NOTHING_SEEN, generator) for _ in range(200)}
    assert picked == {1, 3}


def test_samples_follow_the_temperature_scaled_distribution() -> None:
    """Temperature 0.5 squares the probabilities (then renormalizes): 0.5² / Σp² etc."""
    params = SamplingParams(temperature=0.5)
    generator = torch.Generator().manual_seed(0)
    draws = 4000
    counts = Counter(next_token(_logits(), params, NOTHING_SEEN, generator) for _ in range(draws))
    total = sum(p * p for p in PROBABILITIES)
    for token, p in enumerate(PROBABILITIES):
        assert counts[token] / draws == pytest.approx(p * p / total, abs=0.03)


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits() -> None:
    logits = torch.tensor([2.0, -1.0, 3.0, -2.0, 0.5])
    seen = torch.tensor([0, 1, 1, 4])  # a token seen twice is penalized once
    penalized = penalize_repeats(logits, seen, 2.0)
    assert penalized.tolist() == [1.0, -2.0, 3.0, -2.0, 0.25]
    assert logits.tolist() == [2.0, -1.0, 3.0, -2.0, 0.5], "the caller's logits are not changed"
    assert penalize_repeats(logits, seen, 1.0).tolist() == logits.tolist()


def test_repetition_penalty_can_change_the_greedy_choice() -> None:
    logits = torch.tensor([2.0, 1.5, -1.0])
    seen = torch.tensor([0])
    assert next_token(logits, SamplingParams(temperature=0), seen, None) == 0
    penalized = SamplingParams(temperature=0, repetition_penalty=2.0)
    assert next_token(logits, penalized, seen, None) == 1


def test_seeded_sampling_repeats_and_the_seed_matters() -> None:
    params = SamplingParams(temperature=1.0, top_p=0.95)
    assert _draws(params, seed=7) == _draws(params, seed=7)
    assert _draws(params, seed=7) != _draws(params, seed=8)


# --- SamplingParams.check -----------------------------------------------------------------

LIMIT = 100


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"max_tokens": 0}, "max_tokens must be at least 1"),
        ({"max_tokens": -3}, "max_tokens must be at least 1"),
        ({"max_tokens": LIMIT + 1}, f"max_tokens {LIMIT + 1} is over this model's limit"),
        ({"temperature": -0.1}, "temperature must be 0 or more"),
        ({"temperature": math.nan}, "temperature must be 0 or more"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_k": -1}, "top_k must be 0"),
        ({"repetition_penalty": 0.0}, "repetition_penalty must be above 0"),
        ({"repetition_penalty": -1.0}, "repetition_penalty must be above 0"),
        ({"stop": ("ok", "")}, "stop strings must not be empty"),
    ],
)
def test_check_refuses_nonsense_naming_the_field(changes: dict[str, object], words: str) -> None:
    params = replace(SamplingParams(), **changes)  # type: ignore[arg-type]
    with pytest.raises(BadRequestError, match=words):
        params.check(LIMIT)


def test_check_accepts_the_edges_of_each_range() -> None:
    """The refusals above are about the values, not about any non-default value."""
    SamplingParams().check(LIMIT)
    SamplingParams(
        max_tokens=LIMIT, temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=0.5, stop=("x",)
    ).check(LIMIT)
    SamplingParams(max_tokens=1, top_p=1e-6, top_k=1).check(LIMIT)
