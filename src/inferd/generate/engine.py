"""The generation engine: one thread runs steps; requests stream their tokens as they come.

Each step asks the scheduler which sequences read their prompt and which add a token, runs
them all in one forward pass, samples each sequence's next token, and hands every request
its new text. Requests join and leave between steps. The HTTP side only sees `stream()`, an
async iterator of `Delta`s; when a client goes away, leaving the iterator aborts the sequence
and frees its cache slot at the next step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from inferd.errors import BadRequestError, ModelNotReadyError, SpecError
from inferd.generate.model import CausalLM, KVCache, StepBatch
from inferd.generate.request import Delta, SamplingParams
from inferd.generate.sampling import next_token
from inferd.generate.scheduler import Limits, Scheduler, Sequence, State
from inferd.generate.text import TextStream

logger = logging.getLogger("inferd.generate")


@dataclass
class _Request:
    sequence: Sequence
    stream: TextStream
    loop: asyncio.AbstractEventLoop
    """The event loop of the client that reads `queue`."""
    queue: asyncio.Queue[Delta]
    generator: torch.Generator | None
    submitted: float = field(default_factory=time.perf_counter)
    last_token_at: float | None = None
    aborted: bool = False


@dataclass
class EngineStats:
    running: int
    waiting: int
    cache_tokens_used: int
    cache_tokens_reserved: int
    cache_tokens_capacity: int


StepObserver = Callable[[list[tuple[bool, float]]], None]
"""Called after each step with (is the request's first token, seconds it took: since the
request arrived for a first token, since the previous token otherwise) per token produced:
the hook for time-to-first-token and inter-token-latency metrics."""


INLINE_PROMPT_CHARS = 4096
"""Prompts up to this long are tokenized on the event loop (well under a millisecond)."""


def most_bytes_per_token(tokenizer: Any) -> int | None:
    """The most bytes of text one token can stand for, when there is such a bound: a BPE
    vocabulary without an unknown token spells every text from its tokens. (A WordPiece
    [UNK] can stand for a whole word: no bound.)"""
    model = json.loads(tokenizer.to_str()).get("model", {})
    if model.get("type") != "BPE" or model.get("unk_token") is not None:
        return None
    tokens = tokenizer.get_vocab(with_added_tokens=True)
    return max((len(token.encode("utf-8")) for token in tokens), default=None)


class Engine:
    """Continuous-batching text generation over one causal LM; thread-safe."""

    def __init__(self, folder: Path, limits: Limits, threads: int = 0) -> None:
        from tokenizers import Tokenizer

        tokenizer_path = folder / "tokenizer.json"
        if not tokenizer_path.exists():
            raise SpecError(f"{folder} has no tokenizer.json")
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self._bytes_per_token = most_bytes_per_token(self.tokenizer)
        if threads:
            torch.set_num_threads(threads)
        self.model = CausalLM(folder)
        shape = self.model.shape
        self.limits = Limits(
            max_sequences=limits.max_sequences,
            max_tokens_in_flight=limits.max_tokens_in_flight,
            max_waiting=limits.max_waiting,
            max_context=min(limits.max_context, shape.max_positions),
            max_prefill_tokens=limits.max_prefill_tokens,
        )
        self.cache = KVCache(shape, limits.max_sequences, self.model.dtype)
        self.scheduler = Scheduler(self.limits)
        self.eos_ids = set(shape.eos_token_ids)
        self._requests: dict[int, _Request] = {}
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="inferd-generate", daemon=True)
        self._outbox: list[tuple[_Request, Delta]] = []
        """Deltas produced by the engine thread and not yet handed to their event loops."""
        self.observer: StepObserver | None = None

    # --- the client side ----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def encode(self, text: str) -> list[int]:
        # encode_batch releases the GIL while it works (encode holds it: 3.5 s for 4 MB).
        [encoding] = self.tokenizer.encode_batch([text], add_special_tokens=False)
        return list(encoding.ids)

    async def tokenize(self, prompt: str) -> list[int]:
        """The prompt's token ids, with the event loop free meanwhile: a prompt that cannot
        fit the context is refused from its size alone, and a long one is tokenized in a
        thread."""
        if self._bytes_per_token is not None:
            size = len(prompt.encode("utf-8", "surrogatepass"))
            fewest = -(-size // self._bytes_per_token)
            if fewest > self.limits.max_context:
                raise BadRequestError(
                    f"the prompt is {size} bytes, at least {fewest} tokens: over this "
                    f"model's context of {self.limits.max_context} tokens; shorten the prompt"
                )
        if len(prompt) <= INLINE_PROMPT_CHARS:
            return self.encode(prompt)
        return await asyncio.to_thread(self.encode, prompt)

    def _submit(
        self, prompt: list[int], params: SamplingParams, queue: asyncio.Queue[Delta]
    ) -> int:
        """Queue a request (raises at once if it can never run or must wait too long)."""
        params.check(self.limits.max_context)
        vocab = self.model.shape.vocab_size
        if any(not 0 <= token < vocab for token in prompt):
            raise BadRequestError(
                f"prompt token ids must be in [0, {vocab}); this model's vocabulary"
            )
        sequence = Sequence(prompt=prompt, params=params)
        generator = None
        if params.seed is not None:
            generator = torch.Generator().manual_seed(params.seed)
        stream = TextStream(self.tokenizer, params.stop)
        request = _Request(sequence, stream, asyncio.get_running_loop(), queue, generator)
        with self._lock:
            if self._closed:  # no thread would ever run it: the stream would wait forever
                raise ModelNotReadyError("the model is shutting down; retry later")
            self.scheduler.add(sequence)
            self._requests[sequence.id] = request
            self._lock.notify()
        return sequence.id

    def abort(self, sequence_id: int) -> None:
        with self._lock:
            request = self._requests.get(sequence_id)
            if request is not None:
                request.aborted = True
                self._lock.notify()

    def stream(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[Delta]:
        """Queue the request now (so a refusal is raised here, before any reply is sent) and
        return its output as it is produced; the last Delta has a finish_reason. Leaving the
        iteration early aborts the request."""
        queue: asyncio.Queue[Delta] = asyncio.Queue()
        return self._follow(self._submit(prompt, params, queue), queue)

    async def _follow(self, sequence_id: int, queue: asyncio.Queue[Delta]) -> AsyncIterator[Delta]:
        finished = False
        try:
            while not finished:
                delta = await queue.get()
                # A client that fell behind gets what piled up as one Delta, not one per token:
                # under load the event loop then does less work per token, not more.
                while delta.finish_reason is None and not queue.empty():
                    later = queue.get_nowait()
                    delta = Delta(
                        delta.text + later.text,
                        delta.token_ids + later.token_ids,
                        later.finish_reason,
                        later.prompt_tokens,
                        later.completion_tokens,
                    )
                finished = delta.finish_reason is not None
                yield delta
        finally:
            if not finished:
                self.abort(sequence_id)

    def stats(self) -> EngineStats:
        with self._lock:
            return EngineStats(
                running=len(self.scheduler.running),
                waiting=len(self.scheduler.waiting),
                cache_tokens_used=self.scheduler.cache_tokens_used,
                cache_tokens_reserved=self.scheduler.reserved,
                cache_tokens_capacity=self.limits.max_sequences * self.model.shape.max_positions,
            )

    # --- the engine thread --------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                for request in [r for r in self._requests.values() if r.aborted]:
                    self._end(request, "abort")
                plan = self.scheduler.schedule()
                while not plan and not self._closed:
                    self._lock.wait()
                    for request in [r for r in self._requests.values() if r.aborted]:
                        self._end(request, "abort")
                    plan = self.scheduler.schedule()
                if self._closed:
                    for request in list(self._requests.values()):
                        self._end(request, "abort")
                    self._flush()
                    return
            self._flush()  # the ends of aborted requests
            try:
                self._step(plan.prefill, plan.decode)
            except Exception as error:  # a model failure ends its step's requests, not the engine
                logger.exception("generation step failed")
                with self._lock:
                    for sequence in plan.prefill + plan.decode:
                        failed = self._requests.get(sequence.id)
                        if failed is not None:
                            self._end(failed, f"error: {error}")
                self._flush()

    def _batch(self, prefill: list[Sequence], decode: list[Sequence]) -> StepBatch:
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        ranges: list[tuple[int, int, int]] = []
        logit_rows: list[int] = []
        for sequence in prefill:
            assert sequence.slot is not None
            ranges.append((len(ids), len(sequence.prompt), sequence.slot))
            ids += sequence.prompt
            positions += range(len(sequence.prompt))
            slots += [sequence.slot] * len(sequence.prompt)
            logit_rows.append(len(ids) - 1)
        decode_rows = []
        for sequence in decode:
            assert sequence.slot is not None
            decode_rows.append(len(ids))
            logit_rows.append(len(ids))
            ids.append(sequence.generated[-1])
            positions.append(sequence.length - 1)
            slots.append(sequence.slot)
        long = torch.long
        return StepBatch(
            input_ids=torch.tensor(ids, dtype=long),
            positions=torch.tensor(positions, dtype=long),
            slots=torch.tensor(slots, dtype=long),
            decode_rows=torch.tensor(decode_rows, dtype=long),
            decode_lengths=torch.tensor([s.length for s in decode], dtype=long),
            prefills=ranges,
            logit_rows=torch.tensor(logit_rows, dtype=long),
        )

    def _step(self, prefill: list[Sequence], decode: list[Sequence]) -> None:
        logits = self.model.forward(self._batch(prefill, decode), self.cache)
        greedy = logits.argmax(dim=-1).tolist()  # one call for every plain greedy row
        now = time.perf_counter()
        timings: list[tuple[bool, float]] = []
        finished: list[tuple[_Request, str]] = []
        for row, sequence in enumerate(prefill + decode):
            request = self._requests[sequence.id]
            params = sequence.params
            if params.greedy and params.repetition_penalty == 1.0:
                token = int(greedy[row])
            else:
                seen = torch.tensor(sequence.prompt + sequence.generated, dtype=torch.long)
                token = next_token(logits[row], params, seen, request.generator)
            sequence.generated.append(token)
            ends_text = (token in self.eos_ids and not params.ignore_eos) or (
                token in params.stop_token_ids
            )
            text = "" if ends_text else request.stream.push(token)
            reason = None
            if ends_text or request.stream.stopped:
                reason = "stop"
            elif len(sequence.generated) >= params.max_tokens:
                reason = "length"
            first = request.last_token_at is None
            timings.append((first, now - (request.last_token_at or request.submitted)))
            request.last_token_at = now
            if reason is None:
                self._send(request, Delta(text, [token]))
            else:
                finished.append((request, reason))
                self._send(request, Delta(text + request.stream.finish(), [token]))
        if finished:
            with self._lock:
                for request, reason in finished:
                    self._end(request, reason)
        self._flush()
        if self.observer is not None:
            self.observer(timings)

    def _send(self, request: _Request, delta: Delta) -> None:
        self._outbox.append((request, delta))

    def _flush(self) -> None:
        """Hand the step's Deltas to their event loops: one wake-up per loop and step, not
        one per token, so a busy batch costs the HTTP side one callback per step."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Request, Delta]]] = {}
        for request, delta in self._outbox:
            by_loop.setdefault(request.loop, []).append((request, delta))
        self._outbox = []
        for loop, parcel in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, parcel)
            except RuntimeError:  # the loop is closed: its clients are gone, not the engine
                for request, _ in parcel:
                    logger.warning(
                        "request %d: its client cannot take output; aborting", request.sequence.id
                    )
                    request.aborted = True

    def _end(self, request: _Request, reason: str) -> None:
        """Finish a request (under the lock): free its slot and send the closing Delta."""
        sequence = request.sequence
        if sequence.state is State.FINISHED:
            return
        self.scheduler.finish(sequence, reason)
        del self._requests[sequence.id]
        self._send(
            request,
            Delta(
                "",
                [],
                finish_reason=reason,
                prompt_tokens=len(sequence.prompt),
                completion_tokens=len(sequence.generated),
            ),
        )


def _deliver(parcel: list[tuple[_Request, Delta]]) -> None:
    """Runs on the clients' event loop: each Delta into its request's queue."""
    for request, delta in parcel:
        request.queue.put_nowait(delta)
