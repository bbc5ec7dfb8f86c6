"""Timing OpenAI server-sent events, whatever the boundaries of the reads."""

from __future__ import annotations

import itertools

import pytest

from inferd_bench.sse import SseTimer

STREAM = (
    b'data: {"choices":[{"index":0,"text":"Hel","finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"text":"","finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"text":"lo","finish_reason":"length"}]}\n\n'
    b": a comment line\n\n"
    b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":5}}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 7, 64, len(STREAM)])
def test_any_split_gives_the_same_events(size: int) -> None:
    timer = SseTimer()
    for start in range(0, len(STREAM), size):
        timer(STREAM[start : start + size])
    assert len(timer.times) == 2  # the empty-text event carries no token
    assert timer.completion_tokens == 5
    assert timer.tokens == 5
    assert timer.malformed == 0


def test_times_are_the_arrival_of_each_read() -> None:
    timer = SseTimer()
    first, second = STREAM.split(b"\n\n", 1)
    timer(first + b"\n\n")
    timer(second)
    assert timer.times[0] < timer.times[1]
    assert timer.ttft(timer.times[0] - 0.5) == pytest.approx(0.5)
    assert timer.gaps() == [timer.times[1] - timer.times[0]]


def test_without_usage_tokens_are_counted_by_text_events() -> None:
    timer = SseTimer()
    timer(b'data: {"choices":[{"text":"a"}]}\r\n\r\ndata: {"choices":[{"text":"b"}]}\r\n\r\n')
    assert timer.completion_tokens is None
    assert timer.tokens == 2


def test_chat_deltas_and_malformed_events() -> None:
    timer = SseTimer()
    timer(b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n')
    timer(b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n')
    timer(b"data: {not json\n\ndata: [1, 2]\n\n")
    assert len(timer.times) == 1
    assert timer.malformed == 2
    assert timer.ttft(0.0) == timer.times[0]
    assert list(itertools.chain(timer.gaps())) == []
