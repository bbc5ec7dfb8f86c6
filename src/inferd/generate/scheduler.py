"""Continuous batching: which sequences read their prompt and which add a token, each step.

The scheduler works on plain dataclasses and never touches a model, so its rules are tested
alone. A sequence is admitted only when a cache slot is free and its whole budget (prompt plus
max_tokens) fits in the tokens still unreserved, so an admitted sequence always runs to the
end without being pre-empted; one that could never fit is refused when it arrives.
Admission is first come, first served: a large request at the head is not overtaken.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from inferd.errors import BadRequestError, OverloadedError
from inferd.generate.request import SamplingParams


class State(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass
class Sequence:
    """One request's tokens and where it stands."""

    prompt: list[int]
    params: SamplingParams
    id: int = field(default_factory=itertools.count().__next__)
    generated: list[int] = field(default_factory=list)
    state: State = State.WAITING
    slot: int | None = None
    prefilled: bool = False
    finish_reason: str | None = None
    """"stop" (end of text or a stop rule), "length" (max_tokens) or "abort"."""

    @property
    def budget(self) -> int:
        """Tokens this sequence may hold in the cache at most."""
        return len(self.prompt) + self.params.max_tokens

    @property
    def length(self) -> int:
        return len(self.prompt) + len(self.generated)


@dataclass
class StepPlan:
    prefill: list[Sequence]
    """Admitted this step: their prompts are read and their first token chosen."""
    decode: list[Sequence]
    """Already running: each adds one token."""

    def __bool__(self) -> bool:
        return bool(self.prefill or self.decode)


@dataclass(frozen=True)
class Limits:
    max_sequences: int
    """Sequences running at once (cache slots)."""
    max_tokens_in_flight: int
    """Cache tokens reserved by running sequences at most (prompt + max_tokens each)."""
    max_waiting: int
    """Requests that may wait for a slot; more are refused with 429."""
    max_context: int
    """Prompt plus output tokens of one sequence at most."""
    max_prefill_tokens: int
    """Prompt tokens read in one step (at least one prompt is, however long)."""


class Scheduler:
    """Not thread-safe: the engine calls it under its own lock."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self._free_slots = list(range(limits.max_sequences - 1, -1, -1))
        self.reserved = 0

    def add(self, sequence: Sequence) -> None:
        """Queue a sequence, or refuse it at once if it can never run or the queue is full."""
        limits = self.limits
        if not sequence.prompt:
            raise BadRequestError("the prompt is empty; send at least one token of text")
        if sequence.budget > limits.max_context:
            raise BadRequestError(
                f"the prompt has {len(sequence.prompt)} tokens and max_tokens is "
                f"{sequence.params.max_tokens}: {sequence.budget} in all, over this model's "
                f"context of {limits.max_context} tokens; shorten the prompt or lower max_tokens"
            )
        if sequence.budget > limits.max_tokens_in_flight:
            raise BadRequestError(
                f"the prompt plus max_tokens ({sequence.budget} tokens) is over the "
                f"{limits.max_tokens_in_flight} tokens this server keeps in flight; "
                "lower max_tokens"
            )
        if len(self.waiting) >= limits.max_waiting:
            raise OverloadedError(
                f"{len(self.waiting)} requests are already waiting for this model; retry later"
            )
        self.waiting.append(sequence)

    def schedule(self) -> StepPlan:
        """Admit what fits, in arrival order, and list the running sequences to decode."""
        decode = list(self.running)
        prefill: list[Sequence] = []
        prompt_tokens = 0
        limits = self.limits
        while self.waiting and self._free_slots:
            head = self.waiting[0]
            if self.reserved + head.budget > limits.max_tokens_in_flight:
                break
            if prefill and prompt_tokens + len(head.prompt) > limits.max_prefill_tokens:
                break
            self.waiting.popleft()
            head.slot = self._free_slots.pop()
            head.state = State.RUNNING
            self.reserved += head.budget
            prompt_tokens += len(head.prompt)
            self.running.append(head)
            prefill.append(head)
        return StepPlan(prefill=prefill, decode=decode)

    def finish(self, sequence: Sequence, reason: str) -> None:
        """End a sequence (done or aborted) and give back its slot and budget."""
        if sequence.state is State.FINISHED:
            return
        if sequence.state is State.RUNNING:
            self.running.remove(sequence)
            assert sequence.slot is not None
            self._free_slots.append(sequence.slot)
            self.reserved -= sequence.budget
        else:
            self.waiting.remove(sequence)
        sequence.state = State.FINISHED
        sequence.finish_reason = reason

    @property
    def cache_tokens_used(self) -> int:
        """Tokens actually held in the cache by running sequences."""
        return sum(s.length for s in self.running)
