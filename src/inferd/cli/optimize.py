"""`inferd optimize`: a faster or smaller variant of a model, written as its next version."""

from __future__ import annotations

from typing import Annotated

import typer

from inferd.cli import common
from inferd.cli.common import DEFAULT_REPO, RepoOption, RichSteps, _fail
from inferd.errors import InferdError
from inferd.optimize.variants import Made

QUANTIZE_METHODS = ("dynamic-int8", "static-int8", "fp16")


def optimize(
    model: Annotated[str, typer.Argument(help="Model name (its folder in the repository).")],
    repo: RepoOption = DEFAULT_REPO,
    quantize: Annotated[
        str | None,
        typer.Option(help=f"Quantize the served version: {', '.join(QUANTIZE_METHODS)}."),
    ] = None,
    prune: Annotated[
        float | None,
        typer.Option(help="Remove this share (0-1) of channels/neurons, then fine-tune."),
    ] = None,
    distill: Annotated[
        bool, typer.Option("--distill", help="Train the model as a student of --teacher.")
    ] = False,
    teacher: Annotated[
        str | None, typer.Option(help="--distill: the teacher model (same labels).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="--prune/--distill: training epochs (default: recipe's).")
    ] = None,
    allow_slower: Annotated[
        bool,
        typer.Option("--allow-slower", help="Write the variant even if it measures slower."),
    ] = False,
) -> None:
    """Write a quantized, pruned or distilled variant as the model's next version, recorded
    in its model.yaml with what it measured against its source."""
    chosen = [quantize is not None, prune is not None, distill]
    if sum(chosen) != 1:
        raise _fail("choose one of --quantize METHOD, --prune RATIO or --distill --teacher T")
    if teacher is not None and not distill:
        raise _fail("--teacher goes with --distill")
    steps = RichSteps()
    try:
        if quantize is not None:
            from inferd.optimize.quantize import quantize as run_quantize

            made = run_quantize(repo, model, quantize, allow_slower=allow_slower, steps=steps)
        elif prune is not None:
            from inferd.optimize.prune import prune as run_prune

            made = run_prune(
                repo, model, prune, epochs=epochs, allow_slower=allow_slower, steps=steps
            )
        else:
            if teacher is None:
                raise _fail("--distill needs --teacher MODEL (a model with the same labels)")
            from inferd.optimize.distill import distill as run_distill

            made = run_distill(repo, model, teacher, epochs=epochs, steps=steps)
    except InferdError as error:
        raise _fail(error.message) from None
    show(made)


def show(made: Made) -> None:
    measured = made.variant.measured
    line = f"wrote {made.model} v{made.version} ({made.variant.method} of v{made.variant.source})"
    if "metric" in measured:
        metric, value, source = measured["metric"], measured["value"], measured["source_value"]
        line += f": {metric} {value:.4f} (source {source:.4f})"
    if "speedup" in measured:
        line += (
            f", {measured['speedup']:.2f}x the source's speed at batch {measured['batch']} "
            f"({measured['source_ms_per_batch']:.2f} ms → {measured['ms_per_batch']:.2f} ms)"
        )
    common.console.print(line, highlight=False, soft_wrap=True, markup=False)
    for warning in made.warnings:
        common.err_console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
    if made.served and made.version not in made.served:
        served = ", ".join(f"v{v}" for v in made.served)
        common.console.print(
            f"still serving {served}: pick with `inferd tune {made.model} --apply`, or list "
            f"{made.version} under versions: in model.yaml",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
