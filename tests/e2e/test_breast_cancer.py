"""The bundled `breast-cancer` tabular classifier: `inferd evaluate` (accuracy and malignant
recall against model.yaml's requirements) and a real `inferd serve` answering V1 requests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BUNDLED, Server, start_server, stop_server

MODEL = BUNDLED / "breast-cancer"
ROUTE = "/v1/models/breast-cancer:predict"


def inferd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferd.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def held_out() -> list[dict[str, Any]]:
    lines = (MODEL / "eval" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def first_case(target: str) -> dict[str, float]:
    return dict(next(r["instance"] for r in held_out() if r["target"] == target))


def test_eval_data_is_the_held_out_split() -> None:
    records = held_out()
    targets = [r["target"] for r in records]
    assert len(records) == 143
    assert (targets.count("malignant"), targets.count("benign")) == (53, 90)
    assert len(records[0]["instance"]) == 30
    assert {"mean_radius", "worst_fractal_dimension"} <= set(records[0]["instance"])


# --- inferd evaluate ----------------------------------------------------------------------------


def _recall(output: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+precision \S+ \(\d+/\d+\)\s+recall (\S+)", output, re.M)
    assert match, output
    return float(match.group(1))


def test_evaluate_passes_and_reports_malignant_recall() -> None:
    done = inferd("evaluate", "breast-cancer", "-r", str(BUNDLED))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    accuracy = float(out.split("accuracy = ")[1].split()[0])
    assert accuracy >= 0.95
    assert "on 143 examples (0 failed) (threshold 0.95) pass" in out
    assert _recall(out, "malignant") >= 0.93
    assert _recall(out, "benign") >= 0.9
    assert "(min recall 0.93)" in out
    assert "failed:" not in out


def _copy_with_eval(tmp_path: Path, eval_block: str) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(MODEL, repo / "breast-cancer")
    spec = repo / "breast-cancer" / "model.yaml"
    text = spec.read_text(encoding="utf-8")
    start = text.index("\neval:")
    spec.write_text(text[:start] + f"\neval: {eval_block}\n", encoding="utf-8")
    return repo


def test_evaluate_fails_on_recall_and_says_why(tmp_path: Path) -> None:
    block = (
        "{data: eval/test.jsonl, metric: accuracy, threshold: 0.9, min_recall: {malignant: 0.99}}"
    )
    done = inferd("evaluate", "breast-cancer", "-r", str(_copy_with_eval(tmp_path, block)))
    assert done.returncode == 1, done.stdout + done.stderr
    recall = _recall(done.stdout, "malignant")
    assert f"failed: recall of 'malignant' {recall:.4f} is below the required 0.99" in done.stdout
    assert "accuracy" not in done.stdout.split("failed:")[1]  # the threshold itself was met


def test_evaluate_unknown_recall_class_is_an_error(tmp_path: Path) -> None:
    block = "{data: eval/test.jsonl, metric: accuracy, min_recall: {cancer: 0.9}}"
    done = inferd("evaluate", "breast-cancer", "-r", str(_copy_with_eval(tmp_path, block)))
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "unknown class(es) 'cancer'" in message
    assert "the model's labels are: malignant, benign" in message


# --- inferd serve, KServe V1 --------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over a repository holding only this model."""
    root = tmp_path_factory.mktemp("breast-cancer")
    shutil.copytree(MODEL, root / "repo" / "breast-cancer")
    running = start_server(root / "repo", root / "server.log")
    try:
        yield running
    finally:
        stop_server(running.process)


def test_predicts_a_malignant_and_a_benign_case(served: Server) -> None:
    instances = [first_case("malignant"), first_case("benign")]
    with served.client() as http:
        reply = http.post(ROUTE, json={"instances": instances})
    assert reply.status_code == 200, reply.text
    malignant, benign = reply.json()["predictions"]
    assert malignant["label"] == "malignant" and benign["label"] == "benign"
    for prediction in (malignant, benign):
        assert prediction["score"] > 0.9
        top = prediction["top_k"]
        assert sorted(t["label"] for t in top) == ["benign", "malignant"]
        assert sum(t["score"] for t in top) == pytest.approx(1.0, abs=1e-6)
        assert top[0]["label"] == prediction["label"]


def test_feature_order_does_not_matter(served: Server) -> None:
    case = first_case("malignant")
    with served.client() as http:
        forward = http.post(ROUTE, json={"instances": [case]}).json()["predictions"]
        backward = http.post(ROUTE, json={"instances": [dict(reversed(list(case.items())))]})
    assert backward.json()["predictions"] == forward


def test_missing_feature_is_a_clear_400(served: Server) -> None:
    case = first_case("benign")
    del case["worst_concave_points"]
    with served.client() as http:
        reply = http.post(ROUTE, json={"instances": [case]})
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert error.startswith("missing input(s) worst_concave_points;")
        assert "inputs are mean_radius, mean_texture," in error
        assert http.post(ROUTE, json={"instances": [first_case("benign")]}).status_code == 200


def test_non_numeric_feature_is_a_clear_400(served: Server) -> None:
    case: dict[str, object] = dict(first_case("benign"))
    case["mean_radius"] = "large"
    with served.client() as http:
        reply = http.post(ROUTE, json={"instances": [case]})
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert error == "input 'mean_radius' must be FP32 numbers; got 'large'"
        assert http.get("/v2/health/ready").status_code == 200
