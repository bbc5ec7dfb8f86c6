"""`inferd export kserve`, run in-process with typer's CliRunner: YAML on stdout or files in
a folder, notes on stderr, and refusals that say what to fix."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from inferd.cli import app

ROOT = Path(__file__).resolve().parents[3]
DIGITS = ROOT / "model_repository" / "digits"
runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long messages


def test_it_prints_both_manifests_as_one_yaml_stream() -> None:
    done = runner.invoke(
        app, ["export", "kserve", str(DIGITS), "--storage-uri", "gs://bucket/digits"]
    )
    assert done.exit_code == 0, done.output
    documents = list(yaml.safe_load_all(done.stdout))
    assert [d["kind"] for d in documents] == ["ServingRuntime", "InferenceService"]
    model = documents[1]["spec"]["predictor"]["model"]
    assert model["storageUri"] == "gs://bucket/digits"
    assert model["modelFormat"] == {"name": "onnx"}
    assert "args" not in model
    assert "note: upload the model folder's contents" in _flat(done.stderr)
    assert "note:" not in done.stdout  # stdout stays pipeable into kubectl apply -f -


def test_its_options_reach_the_manifests() -> None:
    done = runner.invoke(
        app,
        [
            "export",
            "kserve",
            str(DIGITS),
            "--storage-uri",
            "pvc://models/digits",
            "--name",
            "handwriting",
            "--namespace",
            "ml",
            "--image",
            "registry.example/inferd:1",
            "--cpu",
            "2",
            "--memory",
            "1Gi",
            "--workers",
            "2",
            "--runtime",
            "inferd-v1",
        ],
    )
    assert done.exit_code == 0, done.output
    runtime, service = yaml.safe_load_all(done.stdout)
    assert runtime["metadata"] == {
        "name": "inferd-v1",
        "namespace": "ml",
        "labels": runtime["metadata"]["labels"],
    }
    assert runtime["spec"]["containers"][0]["image"] == "registry.example/inferd:1"
    assert service["metadata"]["name"] == "handwriting"
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == "inferd-v1"
    assert model["args"] == ["--workers", "2"]
    assert model["resources"]["requests"] == {"cpu": "2", "memory": "1Gi"}


def test_output_writes_one_file_per_object(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    done = runner.invoke(
        app, ["export", "kserve", str(DIGITS), "--storage-uri", "s3://b/digits", "-o", str(out)]
    )
    assert done.exit_code == 0, done.output
    assert done.stdout == ""
    assert sorted(p.name for p in out.iterdir()) == [
        "inferenceservice-digits.yaml",
        "servingruntime-inferd.yaml",
    ]
    assert yaml.safe_load((out / "inferenceservice-digits.yaml").read_text())["kind"] == (
        "InferenceService"
    )
    assert f"wrote {out / 'servingruntime-inferd.yaml'}" in _flat(done.stderr)


def test_a_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    done = runner.invoke(app, ["export", "kserve", str(missing), "--storage-uri", "s3://b/x"])
    assert done.exit_code != 0
    assert f"error: {missing} is not a folder; give a model folder (with model.yaml)" in _flat(
        done.stderr
    )
    assert done.stdout == ""


def test_a_repository_instead_of_a_model_says_so() -> None:
    done = runner.invoke(
        app, ["export", "kserve", str(ROOT / "model_repository"), "--storage-uri", "s3://b/x"]
    )
    assert done.exit_code == 1
    assert "give the folder of one model, not a repository of them" in _flat(done.stderr)


def test_a_bad_model_yaml_says_what_to_fix(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    (folder / "1").mkdir(parents=True)
    (folder / "model.yaml").write_text("batching: {max_batch: 2}\n", encoding="utf-8")
    done = runner.invoke(app, ["export", "kserve", str(folder), "--storage-uri", "s3://b/x"])
    assert done.exit_code == 1
    assert "batching.max_batch: unknown key" in _flat(done.stderr)


def test_the_storage_uri_is_required_and_explained() -> None:
    done = runner.invoke(app, ["export", "kserve", str(DIGITS)])
    assert done.exit_code == 1
    assert "--storage-uri is required: where KServe downloads the model folder from" in _flat(
        done.stderr
    )


def test_bad_options_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = runner.invoke(
        app,
        [
            "export",
            "kserve",
            str(DIGITS),
            "--storage-uri",
            "bucket/digits",
            "--memory",
            "2GB",
            "-o",
            str(out),
        ],
    )
    assert done.exit_code == 1
    message = _flat(done.stderr)
    assert "storage URI 'bucket/digits' is not one KServe can download" in message
    assert "memory '2GB' is not a positive Kubernetes quantity" in message
    assert not out.exists()


def test_export_is_listed_in_the_help() -> None:
    done = runner.invoke(app, ["export", "--help"])
    assert done.exit_code == 0
    assert "kserve" in done.output
