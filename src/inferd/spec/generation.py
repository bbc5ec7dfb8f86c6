"""The `generation:` section of model.yaml: limits of the continuous-batching engine that
serves a generation model."""

from __future__ import annotations

from pydantic import Field

from inferd.spec.base import _Strict


class GenerationSpec(_Strict):
    """How a generation model (task: generation) is served by the continuous-batching engine."""

    max_context: int | None = Field(default=None, ge=2)
    """Prompt plus output tokens of one request (default and ceiling: the checkpoint's)."""
    max_sequences: int = Field(default=16, ge=1)
    """Requests generating at once; each holds one KV-cache slot of max_context tokens."""
    max_tokens_in_flight: int | None = Field(default=None, ge=2)
    """Cache tokens reserved by running requests (prompt + max_tokens each) at most;
    default max_sequences * max_context. A request needing more is refused at once."""
    max_waiting: int = Field(default=256, ge=1)
    """Requests that may wait for a slot; more get 429."""
    max_prefill_tokens: int = Field(default=2048, ge=1)
    """Prompt tokens read in one engine step, so long prompts do not stall running streams."""
    default_max_tokens: int = Field(default=16, ge=1)
    """max_tokens of a request that gives none."""
