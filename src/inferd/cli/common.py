"""What the `inferd` commands share: the consoles, the repository, trust and store options,
sizes, and `_fail`. Commands print through `common.console` and `common.err_console` (not
names imported from here), so a test can swap a console in one place."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from inferd.optimize.progress import Advance

console = Console()
err_console = Console(stderr=True)

DEFAULT_REPO = Path("model_repository")
RepoArg = Annotated[Path, typer.Argument(help="Model repository folder.")]
RepoOption = Annotated[Path, typer.Option("--repo", "-r", help="Model repository folder.")]
TrustOption = Annotated[
    bool,
    typer.Option("--trust-code", help="Allow models that run Python code from their folder."),
]
DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir", help="Folder of the store (prediction log, feedback, action outbox)."
    ),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="INFERD_STORE",
        help="Store URL instead of DATA_DIR/inferd.db, e.g. postgresql://user@host/db.",
    ),
]
DEFAULT_DATA_DIR = Path(".inferd")


def _store_url(data_dir: Path, store: str | None) -> str:
    from inferd.store import default_store_url

    return store or default_store_url(data_dir)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def parse_size(text: str) -> int:
    """'32MiB', '512k', '1000000' → bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)(i?b?)\s*", text.lower())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a size; write e.g. 32MiB, 512KB or 1000000")
    number, unit, _ = match.groups()
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    return int(float(number) * factor)


class RichSteps:
    """The optimize tools' long steps as rich progress bars on stderr, notes on stdout."""

    @contextmanager
    def step(self, description: str, total: float | None = None) -> Iterator[Advance]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
        if total is not None:
            columns.append(MofNCompleteColumn())
        columns.append(TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=False) as progress:
            task = progress.add_task(description, total=total)
            yield lambda amount: progress.advance(task, amount)
            progress.update(task, completed=total if total is not None else 1, total=total or 1)

    def note(self, message: str) -> None:
        console.print(message, highlight=False, soft_wrap=True, markup=False)
