"""The OpenAI-compatible API through a real server, with the official `openai` client.

The model is a tiny random GPT-2 (tests/support/tiny_lm.py): its text is gibberish, but
tokenization, the engine, streaming and the wire format are all real.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.e2e.conftest import Server, start_tiny_generator, stop_server


@pytest.fixture(scope="module")
def generation_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_tiny_generator(tmp_path_factory.mktemp("generation"))
    try:
        yield running
    finally:
        stop_server(running.process)


@pytest.fixture
def client(generation_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=generation_server.url + "/v1", api_key="unused", max_retries=0)


def test_models_lists_the_generation_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_completion_counts_its_tokens(client: openai.OpenAI) -> None:
    answer = client.completions.create(
        model="tiny", prompt="def main():", max_tokens=5, temperature=0
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 5
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 5


def test_streamed_text_equals_the_whole_answer(client: openai.OpenAI) -> None:
    whole = client.completions.create(
        model="tiny", prompt="import os", max_tokens=10, temperature=0
    )
    stream = client.completions.create(
        model="tiny", prompt="import os", max_tokens=10, temperature=0, stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_completion_streams_deltas(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "write a loop"}]
    whole = client.chat.completions.create(
        model="tiny",
        messages=messages,
        max_tokens=6,
        temperature=0,  # type: ignore[arg-type]
    )
    stream = client.chat.completions.create(
        model="tiny",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 6


def test_seeded_sampling_repeats(client: openai.OpenAI) -> None:
    def ask() -> str:
        answer = client.completions.create(
            model="tiny", prompt="class A:", max_tokens=8, temperature=0.9, seed=7
        )
        return answer.choices[0].text

    assert ask() == ask()


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": "x " * 200}, "over this model's context of 64 tokens"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens must be at least 1"),
        ({"prompt": "x", "top_p": 1.5}, "top_p must be in (0, 1]"),
        ({"prompt": "x", "temperature": -1}, "temperature must be 0 or more"),
        ({"prompt": "x", "model": "nope"}, "unknown model 'nope'"),
    ],
)
def test_bad_requests_get_a_clear_4xx(
    generation_server: Server, options: dict[str, object], needle: str
) -> None:
    body = {"model": "tiny", **options}
    with generation_server.client() as http:
        reply = http.post("/v1/completions", json=body)
    assert 400 <= reply.status_code < 500, reply.text
    assert needle in reply.json()["error"]


def test_bad_chat_messages_are_400(generation_server: Server) -> None:
    with generation_server.client() as http:
        reply = http.post(
            "/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "robot"}]}
        )
    assert reply.status_code == 400 and "messages[0].role" in reply.json()["error"]


def test_a_predictive_route_on_a_generator_says_where_to_go(generation_server: Server) -> None:
    with generation_server.client() as http:
        reply = http.post("/v1/models/tiny:predict", json={"instances": ["x"]})
    assert reply.status_code == 400 and "/v1/completions" in reply.json()["error"]


def test_a_client_that_leaves_a_stream_frees_its_slot(generation_server: Server) -> None:
    """Closing the connection mid-stream aborts the sequence: afterwards the server still
    answers as many concurrent requests as it has slots."""

    async def leave_early() -> None:
        async with httpx.AsyncClient(base_url=generation_server.url, timeout=30) as http:
            body = {
                "model": "tiny",
                "prompt": "a",
                "max_tokens": 50,
                "stream": True,
                "ignore_eos": True,
            }
            async with http.stream("POST", "/v1/completions", json=body) as reply:
                async for _ in reply.aiter_lines():
                    break

    async def full(http: httpx.AsyncClient) -> int:
        body = {"model": "tiny", "prompt": "b", "max_tokens": 4}
        return (await http.post("/v1/completions", json=body)).status_code

    async def scenario() -> list[int]:
        await asyncio.gather(*(leave_early() for _ in range(4)))
        async with httpx.AsyncClient(base_url=generation_server.url, timeout=30) as http:
            return list(await asyncio.gather(*(full(http) for _ in range(4))))

    assert asyncio.run(scenario()) == [200] * 4


# --- the Open Inference Protocol's generate extension -----------------------------------------


def test_v2_generate_agrees_with_the_openai_route(generation_server: Server) -> None:
    with generation_server.client() as http:
        v2 = http.post(
            "/v2/models/tiny/generate",
            json={"text_input": "def f(x):", "parameters": {"max_tokens": 6, "temperature": 0}},
        )
        oai = http.post(
            "/v1/completions",
            json={"model": "tiny", "prompt": "def f(x):", "max_tokens": 6, "temperature": 0},
        )
    assert v2.status_code == 200, v2.text
    reply = v2.json()
    assert (reply["model_name"], reply["model_version"]) == ("tiny", "1")
    assert reply["text_output"] == oai.json()["choices"][0]["text"]
    assert reply["usage"]["completion_tokens"] == 6


def test_v2_generate_stream_sends_events(generation_server: Server) -> None:
    body = {"text_input": "import re", "max_tokens": 6, "temperature": 0}
    with generation_server.client() as http:
        whole = http.post("/v2/models/tiny/generate", json=body).json()
        with http.stream("POST", "/v2/models/tiny/generate_stream", json=body) as reply:
            assert reply.headers["content-type"] == "text/event-stream"
            events = [
                json.loads(line.removeprefix("data: "))
                for line in reply.iter_lines()
                if line.startswith("data: ")
            ]
    assert "".join(e["text_output"] for e in events) == whole["text_output"]
    assert events[-1]["finish_reason"] == "length"


def test_v2_generate_refuses_a_missing_prompt(generation_server: Server) -> None:
    with generation_server.client() as http:
        reply = http.post("/v2/models/tiny/generate", json={"parameters": {}})
    assert reply.status_code == 400 and "text_input must be a string" in reply.json()["error"]


def test_generation_metrics(generation_server: Server, client: openai.OpenAI) -> None:
    def scrape() -> dict[str, float]:
        with generation_server.client() as http:
            text = http.get("/metrics").text
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("inferd_") and 'model="tiny"' in line
        }

    before = scrape()
    client.completions.create(model="tiny", prompt="x = 1", max_tokens=5, temperature=0)
    after = scrape()
    tokens = 'inferd_generated_tokens_total{model="tiny"}'
    assert after[tokens] - before.get(tokens, 0.0) == 5
    first = 'inferd_time_to_first_token_seconds_count{model="tiny"}'
    assert after[first] - before.get(first, 0.0) == 1
    between = 'inferd_inter_token_seconds_count{model="tiny"}'
    assert after[between] - before.get(between, 0.0) == 4
    assert after['inferd_kv_cache_tokens{kind="capacity",model="tiny"}'] == 4 * 64
    assert after['inferd_generation_sequences{model="tiny",state="running"}'] == 0


def test_a_full_waiting_queue_is_429_with_retry_after(generation_server: Server) -> None:
    """4 slots and 8 waiting places: of 24 long requests at once, some must be refused, each
    with Retry-After, and every other one completes."""

    async def ask(http: httpx.AsyncClient) -> httpx.Response:
        body = {"model": "tiny", "prompt": "q", "max_tokens": 40, "ignore_eos": True}
        return await http.post("/v1/completions", json=body)

    async def scenario() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(
            base_url=generation_server.url, timeout=60, limits=limits
        ) as http:
            return list(await asyncio.gather(*(ask(http) for _ in range(24))))

    replies = asyncio.run(scenario())
    refused = [r for r in replies if r.status_code == 429]
    assert refused, [r.status_code for r in replies]
    assert all(r.headers.get("retry-after") for r in refused)
    assert "already waiting" in refused[0].json()["error"]
    assert {r.status_code for r in replies} == {200, 429}
