"""`inferd generate`, run in-process against a tiny generation model."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from inferd.cli import app

runner = CliRunner()


def _generation_repo(root: Path) -> Path:
    from tests.support.tiny_lm import gpt2_folder

    gpt2_folder(root / "tiny" / "1")
    (root / "tiny" / "model.yaml").write_text("name: tiny\ntask: generation\nbackend: torch\n")
    return root


def test_generate_streams_a_continuation(tmp_path: Path) -> None:
    repo = _generation_repo(tmp_path)
    args = ["generate", "tiny", "def f():", "-r", str(repo), "--max-tokens", "5"]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "(length)" in first.stderr
    assert first.stdout == second.stdout  # greedy by default


def test_generate_refuses_a_predictive_model(repo: Path) -> None:
    result = runner.invoke(app, ["generate", "aff", "hello", "-r", str(repo)])
    assert result.exit_code == 1
    assert "does not generate text" in result.stderr


def test_generate_reports_bad_sampling_values(tmp_path: Path) -> None:
    repo = _generation_repo(tmp_path)
    result = runner.invoke(app, ["generate", "tiny", "x", "-r", str(repo), "--top-p", "2"])
    assert result.exit_code == 1
    assert "top_p must be in (0, 1]" in result.stderr
