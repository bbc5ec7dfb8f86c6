"""Choosing the next token: greedy, temperature, top-k, top-p and a repetition penalty.

Each sequence samples with its own seeded generator, so a seeded request gets the same text
whether it runs alone or batched with others.
"""

from __future__ import annotations

import torch
from torch import Tensor

from inferd.generate.request import SamplingParams


def penalize_repeats(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """Divide positive and multiply negative logits of seen tokens by the penalty."""
    if penalty == 1.0 or seen.numel() == 0:
        return logits
    chosen = logits[seen]
    logits = logits.clone()
    logits[seen] = torch.where(chosen > 0, chosen / penalty, chosen * penalty)
    return logits


def filter_top_k_top_p(logits: Tensor, top_k: int, top_p: float) -> Tensor:
    """Logits with everything outside the top-k and the top-p nucleus set to -inf."""
    if top_k > 0 and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(-1)
        # Keep a token while the mass before it is under top_p (the first one always).
        drop = (cumulative - torch.softmax(ordered, dim=-1)) >= top_p
        logits = logits.clone()
        logits[order[drop]] = float("-inf")
    return logits


def next_token(
    logits: Tensor, params: SamplingParams, seen: Tensor, generator: torch.Generator | None
) -> int:
    """The next token of one sequence from its [vocab] logits."""
    logits = penalize_repeats(logits.float(), seen, params.repetition_penalty)
    if params.greedy:
        return int(torch.argmax(logits))
    logits = filter_top_k_top_p(logits / params.temperature, params.top_k, params.top_p)
    probabilities = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probabilities, 1, generator=generator))
