"""`inferd optimize --prune` and `--distill` run as a user runs them, and the variant they
write served by a real `inferd serve` once model.yaml chooses it (on `runtime.device: auto`)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

from ruamel.yaml import YAML

from tests.e2e.conftest import BUNDLED, ROOT, start_server, stop_server
from tests.e2e.test_cli import inferd


def _choose(model_dir: Path, version: int, **runtime: str) -> None:
    """What `inferd tune --apply` or a person does: serve the variant."""
    yaml = YAML()
    data = yaml.load((model_dir / "model.yaml").read_text())
    data["versions"] = [version]
    data["runtime"].update(runtime)
    with (model_dir / "model.yaml").open("w") as f:
        yaml.dump(data, f)


def test_a_pruned_variant_is_written_and_served_when_chosen(tmp_path: Path) -> None:
    shutil.copytree(BUNDLED / "digits", tmp_path / "digits")
    # the repository lives outside the checkout: the recipe is found from the current folder
    done = inferd(
        "optimize", "digits", "--prune", "0.5", "--epochs", "1", "--allow-slower",
        "--repo", str(tmp_path), cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote digits v2 (prune of v1): accuracy" in done.stdout
    assert "still serving v1" in done.stdout
    record = YAML(typ="safe").load((tmp_path / "digits" / "model.yaml").read_text())
    assert record["versions"] == [1]
    settings = record["variants"][2]["settings"]
    assert settings["parameters_after"] < settings["parameters_before"]

    _choose(tmp_path / "digits", 2, device="auto")
    server = start_server(tmp_path, tmp_path / "server.log")
    try:
        with server.client() as http:
            ready = http.get("/v2/models/digits/versions/2/ready")
            assert ready.status_code == 200, server.log.read_text()
            assert http.get("/v2/models/digits/versions/1/ready").status_code == 503  # unserved
            seven = base64.b64encode((ROOT / "examples/digits/samples/seven.png").read_bytes())
            answer = http.post(
                "/v1/models/digits:predict", json={"instances": [{"b64": seven.decode()}]}
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["label"] == "7"
    finally:
        stop_server(server.process)


def test_a_distilled_student_is_written_beside_the_labels_only_one(
    tmp_path: Path, teacher_model: Path
) -> None:
    shutil.copytree(BUNDLED / "support-intent", tmp_path / "support-intent")
    teacher = tmp_path / "support-intent-minilm"
    shutil.copytree(teacher_model, teacher, ignore=shutil.ignore_patterns("model.onnx"))
    (teacher / "1" / "model.onnx").symlink_to(teacher_model / "1" / "model.onnx")
    done = inferd(
        "optimize", "support-intent", "--distill", "--teacher", "support-intent-minilm",
        "--epochs", "3", "--repo", str(tmp_path), cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote support-intent v2 (distill of v1)" in done.stdout
    record = YAML(typ="safe").load((tmp_path / "support-intent" / "model.yaml").read_text())
    variant = record["variants"][2]
    assert variant["settings"]["teacher"] == "support-intent-minilm"
    measured = json.dumps(variant["measured"])
    assert "labels_only" in measured and "teacher" in measured
    assert (tmp_path / "support-intent" / "2" / "model.onnx").is_file()
