"""The bundled code-completion model through a real server: pycoder answers the openai client,
and its greedy completions are the same alone and batched with 15 others."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import openai
import pytest

from tests.e2e.conftest import BUNDLED, Server, start_server, stop_server

PROMPTS = [
    json.loads(line)["prompt"]
    for line in (BUNDLED / "pycoder" / "eval" / "prompts.jsonl").read_text().splitlines()
]


@pytest.fixture(scope="module")
def pycoder_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Only pycoder, so the other models' batches do not compete for the cores."""
    root = tmp_path_factory.mktemp("pycoder")
    repo = root / "repo"
    repo.mkdir()
    (repo / "pycoder").symlink_to(BUNDLED / "pycoder", target_is_directory=True)
    running = start_server(repo, root / "server.log")
    try:
        yield running
    finally:
        stop_server(running.process)


def test_a_completion_continues_python(pycoder_server: Server) -> None:
    client = openai.OpenAI(base_url=pycoder_server.url + "/v1", api_key="-", max_retries=0)
    answer = client.completions.create(
        model="pycoder", prompt="import os\n\n\ndef main():\n    ", max_tokens=24, temperature=0
    )
    text = answer.choices[0].text
    assert answer.usage is not None and 0 < answer.usage.completion_tokens <= 24
    assert text.strip(), "pycoder should write some code"


def test_greedy_output_is_the_same_alone_and_batched(pycoder_server: Server) -> None:
    client = openai.AsyncOpenAI(base_url=pycoder_server.url + "/v1", api_key="-", max_retries=0)
    prompts = (PROMPTS * 16)[:16]

    async def complete(prompt: str) -> str:
        answer = await client.completions.create(
            model="pycoder", prompt=prompt, max_tokens=24, temperature=0
        )
        return answer.choices[0].text

    async def scenario() -> tuple[list[str], list[str]]:
        alone = [await complete(p) for p in prompts]
        together = await asyncio.gather(*(complete(p) for p in prompts))
        return alone, list(together)

    alone, together = asyncio.run(scenario())
    assert together == alone
