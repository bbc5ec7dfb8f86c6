"""What a generation request asks for and what it gets back, free of torch.

The transports build `SamplingParams` and read `Delta`s; keeping them here lets the HTTP
layer import them without loading the engine's runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class Delta:
    """New output of one request: text and tokens, and at the end why it stopped."""

    text: str
    token_ids: list[int]
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
