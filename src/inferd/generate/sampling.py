"""Choosing the next token: greedy, temperature, top-k, top-p and a repetition penalty.

Each sequence samples with its own seeded generator, so a seeded request gets the same text
whether it runs alone or batched with others.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from inferd.errors import BadRequestError


@dataclass(frozen=True)
class SamplingParams:
    """How one request's tokens are chosen and when it stops."""

    max_tokens: int = 16
    temperature: float = 1.0
    """0 is greedy: always the most likely token."""
    top_k: int = 0
    """Sample among the k most likely tokens; 0: all."""
    top_p: float = 1.0
    """Sample among the most likely tokens whose probabilities sum to top_p."""
    repetition_penalty: float = 1.0
    """>1 makes tokens already in the prompt or output less likely (CTRL's penalty)."""
    seed: int | None = None
    stop: tuple[str, ...] = ()
    """Text that ends the output (not included in it)."""
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    """Keep going past the model's end-of-text token (benchmarks)."""

    def check(self, max_tokens_limit: int) -> None:
        """Refuse values that make no sense, saying which and why (a 400)."""
        if self.max_tokens <= 0:
            raise BadRequestError(f"max_tokens must be at least 1; got {self.max_tokens}")
        if self.max_tokens > max_tokens_limit:
            raise BadRequestError(
                f"max_tokens {self.max_tokens} is over this model's limit of {max_tokens_limit}"
            )
        if not self.temperature >= 0:
            raise BadRequestError(f"temperature must be 0 or more; got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise BadRequestError(f"top_p must be in (0, 1]; got {self.top_p}")
        if self.top_k < 0:
            raise BadRequestError(f"top_k must be 0 (off) or more; got {self.top_k}")
        if not self.repetition_penalty > 0:
            raise BadRequestError(
                f"repetition_penalty must be above 0; got {self.repetition_penalty}"
            )
        if any(not s for s in self.stop):
            raise BadRequestError("stop strings must not be empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


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
