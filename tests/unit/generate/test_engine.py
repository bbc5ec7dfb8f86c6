"""The engine with a tiny random GPT-2: a request gets the same tokens alone or batched with
others, streams text that adds up, stops on its rules, and gives its slot back when it ends,
when its client leaves, or when the engine closes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from inferd.errors import BadRequestError, ModelNotReadyError
from inferd.generate.engine import Engine, most_bytes_per_token
from inferd.generate.request import Delta, SamplingParams
from inferd.generate.scheduler import Limits
from tests.support.tiny_lm import gpt2_folder

CONTEXT = 256
LIMITS = Limits(
    max_sequences=4,
    max_tokens_in_flight=4 * CONTEXT,
    max_waiting=16,
    max_context=CONTEXT,
    max_prefill_tokens=CONTEXT,
)
PROMPTS = ["def dumps(obj", "import json\n", "x", 'class JSONEncoder(object):\n    """Extensible']
GREEDY = SamplingParams(temperature=0, ignore_eos=True)
MakeEngine = Callable[..., Engine]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gpt2_folder(tmp_path_factory.mktemp("tiny-lm"), positions=CONTEXT)


@pytest.fixture()
def make_engine(folder: Path) -> Iterator[MakeEngine]:
    """Started engines with some limits changed, closed at the end of the test."""
    engines: list[Engine] = []

    def make(**changes: int) -> Engine:
        engine = Engine(folder, replace(LIMITS, **changes))
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture()
def engine(make_engine: MakeEngine) -> Engine:
    return make_engine()


async def _deltas(engine: Engine, prompt: str, params: SamplingParams) -> list[Delta]:
    async def collect() -> list[Delta]:
        return [delta async for delta in engine.stream(engine.encode(prompt), params)]

    return await asyncio.wait_for(collect(), 20)


async def _alone_and_together(
    engine: Engine, requests: list[tuple[str, SamplingParams]]
) -> tuple[list[list[Delta]], list[list[Delta]]]:
    alone = [await _deltas(engine, prompt, params) for prompt, params in requests]
    together = await asyncio.gather(*(_deltas(engine, p, params) for p, params in requests))
    return alone, list(together)


def _tokens(deltas: list[Delta]) -> list[int]:
    return [token for delta in deltas for token in delta.token_ids]


def _text(deltas: list[Delta]) -> str:
    return "".join(delta.text for delta in deltas)


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.005)


def _idle(engine: Engine) -> bool:
    stats = engine.stats()
    return (stats.running, stats.waiting, stats.cache_tokens_reserved) == (0, 0, 0)


async def test_greedy_output_is_the_same_alone_and_batched(engine: Engine) -> None:
    """Prompts of different lengths, ending at different steps, share every step's forward
    pass; each must still get exactly the tokens it gets alone."""
    requests = [
        (p, SamplingParams(max_tokens=n, temperature=0))
        for p, n in zip(PROMPTS, [12, 5, 20, 8], strict=True)
    ]
    alone, together = await _alone_and_together(engine, requests)
    assert [_tokens(d) for d in together] == [_tokens(d) for d in alone]
    assert [_text(d) for d in together] == [_text(d) for d in alone]
    assert _idle(engine)


async def test_seeded_sampling_is_the_same_alone_and_batched(engine: Engine) -> None:
    sampled = SamplingParams(max_tokens=15, temperature=1.0, top_p=0.9, ignore_eos=True)
    requests = [(p, replace(sampled, seed=i)) for i, p in enumerate(PROMPTS)]
    alone, together = await _alone_and_together(engine, requests)
    assert [_tokens(d) for d in together] == [_tokens(d) for d in alone]
    other_seed = await _deltas(engine, PROMPTS[0], replace(sampled, seed=99))
    assert _tokens(other_seed) != _tokens(alone[0]), "the seed makes a difference"


async def test_deltas_add_up_and_the_last_says_why_and_how_many(engine: Engine) -> None:
    prompt = PROMPTS[3]
    deltas = await _deltas(engine, prompt, replace(GREEDY, max_tokens=9))
    last = deltas[-1]
    assert last.finish_reason == "length"
    assert all(delta.finish_reason is None for delta in deltas[:-1])
    assert (last.prompt_tokens, last.completion_tokens) == (len(engine.encode(prompt)), 9)
    assert len(_tokens(deltas)) == 9
    assert _text(deltas) == engine.tokenizer.decode(_tokens(deltas))


async def test_a_stop_string_ends_the_text_before_it(engine: Engine) -> None:
    """The stop string is taken from what the model writes greedily without one."""
    full = _text(await _deltas(engine, PROMPTS[0], replace(GREEDY, max_tokens=30)))
    start = next(i for i in range(len(full) // 3, len(full)) if "\ufffd" not in full[i : i + 2])
    stop = full[start : start + 2]
    deltas = await _deltas(engine, PROMPTS[0], replace(GREEDY, max_tokens=30, stop=(stop,)))
    assert _text(deltas) == full[: full.index(stop)]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].completion_tokens < 30


async def test_a_stop_token_ends_the_output(engine: Engine) -> None:
    """Generation ends at the first stop token; its text is not given, its id is."""
    tokens = _tokens(await _deltas(engine, PROMPTS[1], replace(GREEDY, max_tokens=20)))
    stop = tokens[5]
    end = tokens.index(stop)
    deltas = await _deltas(
        engine, PROMPTS[1], replace(GREEDY, max_tokens=20, stop_token_ids=(stop,))
    )
    assert _tokens(deltas) == tokens[: end + 1]
    assert _text(deltas) == engine.tokenizer.decode(tokens[:end])
    assert (deltas[-1].finish_reason, deltas[-1].completion_tokens) == ("stop", end + 1)


async def test_more_requests_than_slots_all_complete(make_engine: MakeEngine) -> None:
    engine = make_engine(max_sequences=2)
    requests = [(PROMPTS[i % 4], SamplingParams(max_tokens=4 + i, temperature=0)) for i in range(7)]
    alone, together = await _alone_and_together(engine, requests)
    assert [d[-1].completion_tokens for d in together] == [d[-1].completion_tokens for d in alone]
    assert [_tokens(d) for d in together] == [_tokens(d) for d in alone]
    assert _idle(engine)


async def test_leaving_the_stream_early_aborts_and_frees_the_slot(engine: Engine) -> None:
    produced: list[tuple[bool, float]] = []
    engine.observer = produced.extend
    async for delta in engine.stream(engine.encode(PROMPTS[0]), replace(GREEDY, max_tokens=200)):
        assert delta.finish_reason is None
        break
    await _until(lambda: _idle(engine))
    assert len(produced) < 200, "the sequence ran to its end instead of being aborted"


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "words"),
    [
        ("", 5, "the prompt is empty"),
        ("x", CONTEXT, "over this model's context"),
        ("x", CONTEXT + 1, "over this model's limit"),
    ],
)
async def test_a_request_that_can_never_run_is_refused_at_once(
    engine: Engine, prompt: str, max_tokens: int, words: str
) -> None:
    """Raised by stream() itself, before a transport has sent any reply."""
    with pytest.raises(BadRequestError, match=words):
        engine.stream(engine.encode(prompt), SamplingParams(max_tokens=max_tokens))
    assert _idle(engine)


async def test_a_request_over_the_tokens_in_flight_is_refused(make_engine: MakeEngine) -> None:
    engine = make_engine(max_tokens_in_flight=32)
    with pytest.raises(BadRequestError, match="tokens this server keeps in flight"):
        engine.stream(engine.encode("x"), SamplingParams(max_tokens=32))


async def test_close_ends_running_and_waiting_streams_with_abort(make_engine: MakeEngine) -> None:
    engine = make_engine(max_sequences=1)
    gate = threading.Event()

    def hold(_: list[tuple[bool, float]]) -> None:
        gate.wait(10)  # the engine holds after its first step, until the test lets it go

    engine.observer = hold
    params = replace(GREEDY, max_tokens=200)
    streams: list[AsyncIterator[Delta]] = [
        engine.stream(engine.encode(p), params) for p in PROMPTS[:3]
    ]
    tasks = [asyncio.ensure_future(anext(stream)) for stream in streams]
    first = await asyncio.wait_for(tasks[0], 5)  # the running one; the other two wait
    assert first.finish_reason is None
    assert (engine.stats().running, engine.stats().waiting) == (1, 2)
    gate.set()
    engine.close()
    endings = [first, *[await asyncio.wait_for(task, 5) for task in tasks[1:]]]
    for stream, delta in zip(streams, endings, strict=True):
        while delta.finish_reason is None:
            delta = await asyncio.wait_for(anext(stream), 5)
        assert delta.finish_reason == "abort"
    with pytest.raises(ModelNotReadyError, match="shutting down"):
        engine.stream(engine.encode("x"), params)


async def test_token_ids_outside_the_vocabulary_are_refused(engine: Engine) -> None:
    vocab = engine.model.shape.vocab_size
    with pytest.raises(BadRequestError, match=f"must be in \\[0, {vocab}\\)"):
        engine.stream([1, vocab], SamplingParams(max_tokens=2))


async def test_a_prompt_that_cannot_fit_is_refused_from_its_size_alone(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    longest = most_bytes_per_token(engine.tokenizer)
    assert longest is not None and longest >= 1
    monkeypatch.setattr(engine, "encode", _never_called)
    with pytest.raises(BadRequestError, match=r"at least .* tokens: over this model's context"):
        await engine.tokenize("x" * (longest * CONTEXT + 1))


async def test_a_long_prompt_is_tokenized_off_the_loop_and_alike(engine: Engine) -> None:
    loop_thread = threading.current_thread()
    threads: list[threading.Thread] = []
    encode = engine.encode

    def noting(text: str) -> list[int]:
        threads.append(threading.current_thread())
        return encode(text)

    engine.encode = noting  # type: ignore[method-assign]
    short, long = PROMPTS[0], ("import json\n" * 400)[:4800]
    assert await engine.tokenize(short) == encode(short)
    assert await engine.tokenize(long) == encode(long)
    assert [t is loop_thread for t in threads] == [True, False]
    assert encode(long) == engine.tokenizer.encode(long, add_special_tokens=False).ids


def test_a_vocabulary_with_an_unknown_token_has_no_bytes_bound() -> None:
    from tokenizers import Tokenizer, models

    word_piece = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    assert most_bytes_per_token(word_piece) is None
    bpe = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")]))
    assert most_bytes_per_token(bpe) == 2


def _never_called(text: str) -> list[int]:
    raise AssertionError("the prompt was tokenized")
