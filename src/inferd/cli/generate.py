"""`inferd generate`: a generation model's continuation of a prompt, streamed in-process."""

from __future__ import annotations

from typing import Annotated

import typer

from inferd.cli import common
from inferd.cli.common import DEFAULT_REPO, RepoOption, _fail
from inferd.errors import InferdError
from inferd.repository import ModelRepository


def generate(
    model: Annotated[str, typer.Argument(help="A generation model of the repository.")],
    prompt: Annotated[str, typer.Argument(help="The text to continue.")],
    repo: RepoOption = DEFAULT_REPO,
    max_tokens: Annotated[int, typer.Option(help="Tokens to generate at most.")] = 64,
    temperature: Annotated[float, typer.Option(help="0 is greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option()] = 1.0,
    top_k: Annotated[int, typer.Option()] = 0,
    repetition_penalty: Annotated[float, typer.Option()] = 1.0,
    seed: Annotated[int | None, typer.Option()] = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop at this text (repeatable).")] = None,
) -> None:
    """Stream a model's continuation of a prompt to the terminal, in-process (no server)."""
    import asyncio

    from inferd.generate.request import SamplingParams

    try:
        entry = ModelRepository(repo).load_one(model)
    except InferdError as error:
        raise _fail(error.message) from None
    latest = entry.latest
    if latest is None:
        raise _fail(f"model {model!r} did not load: {'; '.join(entry.errors)}")
    engine = latest.engine
    if engine is None:
        raise _fail(f"model {model!r} does not generate text; use `inferd predict`")
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        repetition_penalty=repetition_penalty,
        seed=seed,
        stop=tuple(stop or ()),
    )

    async def run() -> str | None:
        reason = None
        async for delta in engine.stream(await engine.tokenize(prompt), params):
            typer.echo(delta.text, nl=False)
            reason = delta.finish_reason or reason
        typer.echo()
        return reason

    engine.start()
    try:
        reason = asyncio.run(run())
    except InferdError as error:
        raise _fail(error.message) from None
    finally:
        engine.close()
    common.err_console.print(f"[dim]({reason})[/dim]", highlight=False)
