"""`inferd evaluate` saves the version's reference profile, the baseline drift is measured
against: the eval inputs as the server decodes and logs them."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from inferd.cli import app
from inferd.monitor.profile import load_profile
from tests.e2e.conftest import BUNDLED

runner = CliRunner()


def test_evaluate_saves_the_reference_profile(tmp_path: Path) -> None:
    shutil.copytree(BUNDLED / "loan-approval", tmp_path / "loan-approval")
    (tmp_path / "loan-approval" / "1" / "profile.json").unlink()
    done = runner.invoke(app, ["evaluate", "loan-approval", "--repo", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "reference profile" in done.output
    profile = load_profile(tmp_path / "loan-approval" / "1")
    assert profile is not None and profile.count == 2000
    assert set(profile.numeric) == {
        "income",
        "debt_ratio",
        "credit_history_years",
        "savings",
        "loan_amount",
    }
    assert set(profile.categorical["group"]) == {"A", "B"}
