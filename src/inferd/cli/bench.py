"""`inferd bench`: the load generator (`inferd_bench`, a client package) against a server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inferd.cli import common
from inferd.cli.common import _fail


def bench(
    url: Annotated[str, typer.Argument(help="The server, e.g. http://127.0.0.1:8000")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model to send requests to.")],
    protocol: Annotated[
        str | None,
        typer.Option(help="v2, v2-binary, v1 or openai; default: v1 for --eval, else v2."),
    ] = None,
    scenario: Annotated[
        str, typer.Option(help="single-stream, server, offline or sweep.")
    ] = "sweep",
    concurrency: Annotated[
        str, typer.Option(help="sweep: closed-loop levels, e.g. 1,4,16,64.")
    ] = "1,4,16,64",
    duration: Annotated[float, typer.Option(help="Measured seconds per level.")] = 10.0,
    warmup: Annotated[float, typer.Option(help="Unmeasured seconds before each level.")] = 2.0,
    requests: Annotated[
        int | None,
        typer.Option(help="single-stream: this many instead of --duration; offline: the batch."),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="server: Poisson arrivals per second (no search).")
    ] = None,
    p99_bound_ms: Annotated[
        float | None,
        typer.Option(help="server: find the highest rate whose p99 stays under this."),
    ] = None,
    search_steps: Annotated[int, typer.Option(help="server: bisection steps.")] = 4,
    max_connections: Annotated[
        int, typer.Option(help="server/offline: connections opened at most.")
    ] = 256,
    timeout: Annotated[float, typer.Option(help="Seconds before a request is a timeout.")] = 30.0,
    workers: Annotated[int, typer.Option(help="Generator processes sharing the load.")] = 1,
    samples: Annotated[
        Path | None,
        typer.Option(help="JSONL of request bodies (V2 or V1), or of prompts (openai)."),
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option("--eval", help="An inferd model folder or eval JSONL: its instances/prompts."),
    ] = None,
    shape: Annotated[
        list[str] | None,
        typer.Option(help="Random inputs: an input's whole shape, NAME=1,28,28 (repeatable)."),
    ] = None,
    random_samples: Annotated[int, typer.Option(help="Random inputs: distinct requests.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of random inputs and arrivals.")] = 0,
    max_tokens: Annotated[int, typer.Option(help="openai: tokens per completion.")] = 32,
    ignore_eos: Annotated[
        bool, typer.Option("--ignore-eos", help="openai: always make --max-tokens tokens.")
    ] = False,
    header: Annotated[
        list[str] | None,
        typer.Option(help="Extra request header, 'Name: value' (repeatable)."),
    ] = None,
    json_out: Annotated[
        str | None,
        typer.Option("--json", help="Write the result as JSON to FILE, or - for stdout."),
    ] = None,
    plot_out: Annotated[
        Path | None, typer.Option("--plot", help="Write latency against load as a PNG.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
) -> None:
    """Load-test a running server (V2, V1 or OpenAI-compatible) from this process."""
    import inferd_bench as loadgen

    try:
        config = loadgen.BenchConfig(
            url=url,
            model=model,
            protocol=protocol,  # type: ignore[arg-type]  # checked by BenchConfig.check
            scenario=scenario,  # type: ignore[arg-type]
            concurrency=loadgen.parse_levels(concurrency),
            duration_s=duration,
            warmup_s=warmup,
            requests=requests,
            rate=rate,
            p99_bound_ms=p99_bound_ms,
            search_steps=search_steps,
            max_connections=max_connections,
            timeout_s=timeout,
            workers=workers,
            samples=samples,
            eval_data=eval_data,
            shapes=dict(loadgen.parse_shape(text) for text in shape or []),
            random_samples=random_samples,
            seed=seed,
            max_tokens=max_tokens,
            ignore_eos=ignore_eos,
            headers=dict(loadgen.parse_header(text) for text in header or []),
            progress=not quiet and common.err_console.is_terminal,
        )
        result = loadgen.run_bench(config)
        if plot_out is not None:
            loadgen.plot(result, plot_out)
    except loadgen.BenchError as error:
        raise _fail(str(error)) from None
    if json_out == "-":
        typer.echo(loadgen.to_json(result).decode(), nl=False)
    else:
        if json_out is not None:
            Path(json_out).write_bytes(loadgen.to_json(result))
        typer.echo(loadgen.markdown(result), nl=False)
    if any(point.errors for point in result.points):
        common.err_console.print("[yellow]some requests failed; see the errors column[/yellow]")
