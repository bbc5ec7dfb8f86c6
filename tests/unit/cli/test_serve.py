"""`inferd serve`'s refusals before anything listens: exposure without a key, and a budget
that could not work."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from inferd.cli import app


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--host", "0.0.0.0"], "refusing to serve on 0.0.0.0 without an API key"),
        (["--host", "::"], "refusing to serve on :: without an API key"),
        (["--max-connections", "0"], "--max-connections must be at least 1; got 0"),
        (["--header-timeout", "0"], "--header-timeout must be positive; got 0.0"),
        (["--body-timeout", "-1"], "--body-timeout must be positive; got -1.0"),
        (["--max-header-size", "0"], "--max-header-size must be at least 1; got 0"),
    ],
)
def test_serve_refuses_before_listening(tmp_path: Path, options: list[str], says: str) -> None:
    done = CliRunner().invoke(app, ["serve", str(tmp_path), *options])
    assert done.exit_code == 1
    assert says in " ".join(done.output.split()), done.output


def test_the_budget_and_its_defaults_are_in_the_help() -> None:
    text = " ".join(CliRunner().invoke(app, ["serve", "--help"]).output.split())
    for flag in (
        "--max-connections",
        "--max-header-size",
        "--max-body-size",
        "--header-timeout",
        "--body-timeout",
        "--keep-alive-timeout",
        "--insecure",
    ):
        assert flag in text
    assert "default: 1000" in text and "default: 64KiB" in text
