"""The `inferd` command on the bundled models: predict, evaluate, models, validate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import BUNDLED, SAMPLES


def inferd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferd.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_predict_digit_file_json() -> None:
    done = inferd("predict", "digits", str(SAMPLES / "seven.png"), "-r", str(BUNDLED), "--json")
    assert done.returncode == 0, done.stderr
    prediction = json.loads(done.stdout)
    assert prediction["label"] == "7" and len(prediction["top_k"]) == 3


def test_predict_named_features() -> None:
    line = (BUNDLED / "diabetes" / "eval" / "test.jsonl").read_text().splitlines()[0]
    features = [f"{k}={v}" for k, v in json.loads(line)["instance"].items()]
    done = inferd("predict", "diabetes", *features, "-r", str(BUNDLED), "--json")
    assert done.returncode == 0, done.stderr
    assert 20 < json.loads(done.stdout)["value"] < 400


def test_predict_from_repo_root_default(tmp_path: Path) -> None:
    done = inferd("predict", "digits", str(SAMPLES / "three.jpg"), cwd=BUNDLED.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("3")


def test_digits_accuracy_reaches_97_percent() -> None:
    done = inferd("evaluate", "digits", "-r", str(BUNDLED))
    assert done.returncode == 0, done.stdout + done.stderr
    accuracy = float(done.stdout.split("accuracy = ")[1].split()[0])
    assert accuracy >= 0.97


def test_diabetes_beats_the_mean_predictor() -> None:
    done = inferd("evaluate", "diabetes", "-r", str(BUNDLED))
    assert done.returncode == 0, done.stdout + done.stderr
    r2 = float(done.stdout.split("r2 = ")[1].split()[0])
    assert r2 > 0.0  # the mean predictor scores 0 (or less, with the training mean)


def test_models_and_validate_on_bundled_repo() -> None:
    listed = inferd("models", str(BUNDLED))
    assert listed.returncode == 0 and "digits" in listed.stdout and "diabetes" in listed.stdout
    checked = inferd("validate", str(BUNDLED))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "models are valid" in " ".join(checked.stdout.split())
