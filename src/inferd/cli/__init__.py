"""The `inferd` command: thin — it parses, calls the library, and prints.

One module per command group; this one makes `app` (the `inferd` console script) and
registers the commands in the order `inferd --help` lists them.
"""

from __future__ import annotations

import typer

from inferd.cli import (
    actions,
    bench,
    devices,
    evaluate,
    export,
    generate,
    optimize,
    query,
    report,
    serve,
    tune,
)
from inferd.cli.common import parse_size

app = typer.Typer(
    help="inferd: serve, query and evaluate models.", no_args_is_help=True, add_completion=False
)
app.command()(serve.serve)
app.command()(query.predict)
app.command()(query.models)
app.command()(query.validate)
app.command()(evaluate.evaluate)
app.command()(generate.generate)
app.command()(actions.actions)
app.command()(report.report)
app.command()(bench.bench)
app.command()(optimize.optimize)
app.command()(tune.tune)
app.command()(devices.devices)
app.add_typer(export.app)

__all__ = ["app", "parse_size"]
