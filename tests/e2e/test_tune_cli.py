"""`inferd tune` end to end: real `inferd serve` processes measured by the built-in load
generator, on a tiny search space with short measurements."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import BUNDLED
from tests.support import cascades

ROOT = Path(__file__).resolve().parents[2]


def run_tune(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "inferd.cli", "tune", *args],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(BUNDLED / "digits", repo / "digits")
    return repo


def test_tune_digits_chooses_reports_and_applies(repo: Path, tmp_path: Path) -> None:
    before = (repo / "digits" / "model.yaml").read_text()
    done = run_tune(
        tmp_path,
        "digits", "--repo", str(repo), "--p99-ms", "100", "--threads", "1",
        "--batch-sizes", "1,8", "--delays-ms", "0", "--budget-s", "12",
        "--out", str(tmp_path / "report"), "--apply",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "chosen: v1 cpu t1" in done.stdout
    assert "lacks" in done.stdout  # the CPU and what it lacks
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(data["configurations"]) == 2
    chosen = data["chosen"]
    assert chosen["meets_p99"] and chosen["meets_metric"] and chosen["measured"]["rate"] > 0
    assert chosen["measured"]["p99_ms"] <= 100
    assert (tmp_path / "report" / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert "| v1 cpu t1 b1 d0 |" in (tmp_path / "report" / "report.md").read_text()
    text = (repo / "digits" / "model.yaml").read_text()
    assert text.startswith("# The bundled image-classification example")
    assert f"max_batch_size: {chosen['max_batch_size']}" in text
    assert "versions: [1]" in text
    assert text != before
    assert sorted(p.name for p in (repo / "digits").iterdir()) == sorted(
        ["1", "eval", "labels.txt", "model.yaml"]
    )  # nothing else written into the repository


def test_an_slo_nothing_meets_says_so_and_writes_nothing(repo: Path, tmp_path: Path) -> None:
    before = (repo / "digits" / "model.yaml").read_text()
    done = run_tune(
        tmp_path,
        "digits", "--repo", str(repo), "--p99-ms", "0.01", "--threads", "1",
        "--batch-sizes", "1", "--budget-s", "5", "--out", str(tmp_path / "report"), "--apply",
    )  # fmt: skip
    assert done.returncode == 1
    assert "no configuration met p99 <= 0.01 ms" in done.stderr
    assert "v1 cpu t1 b1 d0: p99" in done.stdout  # the closest, with its p99
    assert "nothing applied" in done.stderr
    assert (repo / "digits" / "model.yaml").read_text() == before
    assert json.loads((tmp_path / "report" / "report.json").read_text())["chosen"] is None


def test_bad_input_is_a_clear_error(repo: Path, tmp_path: Path) -> None:
    unknown = run_tune(tmp_path, "nope", "--repo", str(repo), "--p99-ms", "5")
    assert unknown.returncode == 1 and "unknown model 'nope'" in unknown.stderr
    spec = repo / "digits" / "model.yaml"
    spec.write_text(spec.read_text().replace("eval: {data: eval/test.jsonl", "# eval: {"))
    no_eval = run_tune(tmp_path, "digits", "--repo", str(repo), "--p99-ms", "5")
    assert no_eval.returncode == 1 and "no eval: section" in no_eval.stderr
    both = run_tune(
        tmp_path, "digits", "--repo", str(repo), "--p99-ms", "5",
        "--min-metric", "0.9", "--max-drop", "0.01",
    )  # fmt: skip
    assert both.returncode == 1 and "not both" in both.stderr
    assert not (tmp_path / "tune-reports").exists()


def test_tune_a_cascade_chooses_its_threshold(teacher_model: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(BUNDLED / "support-intent", repo / "support-intent")
    (repo / "support-intent-minilm").symlink_to(teacher_model)
    folder = cascades.cascade(
        repo,
        "support-intent-cascade",
        "support-intent",
        "support-intent-minilm",
        "confidence < 0.8",
        eval={"data": "eval/test.jsonl", "metric": "accuracy"},
    )
    (folder / "eval").mkdir()
    shutil.copyfile(repo / "support-intent" / "eval" / "test.jsonl", folder / "eval" / "test.jsonl")
    members = {
        m: (repo / m / "model.yaml").read_text()
        for m in ("support-intent", "support-intent-minilm")
    }
    done = run_tune(
        tmp_path,
        "support-intent-cascade", "--repo", str(repo), "--p99-ms", "2000", "--max-drop", "0.01",
        "--budget-s", "15", "--rate", "5", "--out", str(tmp_path / "report"), "--apply",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    rows = data["configurations"]
    assert 2 <= len(rows) <= 6
    assert all(r["threshold"] is not None and 0 <= r["share_sent"] <= 1 for r in rows)
    assert all(r["version"] is None and r["threads"] is None for r in rows)
    chosen = data["chosen"]
    assert chosen["meets_metric"] and chosen["metric"] >= data["best_source"] - 0.01
    assert chosen["share_sent"] < 1.0  # a cascade that sends everything on is the big model
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| when | sent on |" in report and f"{chosen['share_sent']:.1%}" in report
    when = f"confidence < {chosen['threshold']:g}"
    assert f"pinned in {repo / folder.name / 'model.yaml'}: cascade.when" in done.stdout
    assert when in (folder / "model.yaml").read_text()
    assert sorted(p.name for p in folder.iterdir()) == ["eval", "model.yaml"]
    assert {m: (repo / m / "model.yaml").read_text() for m in members} == members


def test_a_cascade_with_a_missing_member_is_a_clear_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(BUNDLED / "support-intent", repo / "support-intent")
    folder = cascades.cascade(
        repo, "c", "support-intent", "gone", "confidence < 0.8",
        eval={"data": "eval/test.jsonl", "metric": "accuracy"},
    )  # fmt: skip
    before = (folder / "model.yaml").read_text()
    done = run_tune(tmp_path, "c", "--repo", str(repo), "--p99-ms", "100", "--apply")
    assert done.returncode == 1
    assert "its then model 'gone' is not a model of this repository" in done.stderr
    assert (folder / "model.yaml").read_text() == before
