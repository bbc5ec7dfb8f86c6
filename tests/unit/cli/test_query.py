"""`inferd models`, `inferd validate` and `inferd predict`, run in-process with typer's
CliRunner against tmp repositories."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from inferd.cli import app
from inferd.cli.query import _instances
from tests.support import onnx_models

runner = CliRunner()


def _table_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0]:
            rows[cells[0]] = cells
    return rows


def test_models_table_lists_the_models(repo: Path) -> None:
    result = runner.invoke(app, ["models", str(repo)])
    assert result.exit_code == 0, result.output
    rows = _table_rows(result.stdout)
    assert sorted(rows) == ["aff", "digits", "house"]
    assert rows["aff"] == [
        "aff",
        "1",
        "tensor",
        "onnx",
        "x FP32[-1, 4]",
        "logits FP32[-1, 3]",
        "ok",
    ]
    assert rows["house"][2:5] == [
        "regression",
        "onnx",
        "rooms FP64[-1, 1], area FP64[-1, 1], age FP64[-1, 1]",
    ]
    assert rows["house"][5] == "price FP32[-1, 1]"
    assert rows["digits"][2] == "classification"
    assert rows["digits"][5] == ("label BYTES[-1, 1], score FP32[-1, 1], probabilities FP32[-1, 3]")


def test_models_table_shows_failures(broken_repo: Path) -> None:
    result = runner.invoke(app, ["models", str(broken_repo)])
    assert result.exit_code == 0, result.output
    rows = _table_rows(result.stdout)
    assert rows["bad"][1:6] == ["-", "-", "-", "-", "-"]
    assert "bad/model.yaml is not valid:" in rows["bad"][6]
    assert "batching.max_batch: unknown key" in result.stdout
    assert rows["aff"][6] == "ok"


def test_models_missing_repo(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "is not a folder" in result.stderr


def test_validate_good_repo(repo: Path) -> None:
    result = runner.invoke(app, ["validate", str(repo)])
    assert result.exit_code == 0, result.output
    assert "✓ aff" in result.stdout
    assert "✓ house (versions 1)" in result.stdout
    assert "all 3 models are valid" in result.stdout


def test_validate_broken_repo(broken_repo: Path) -> None:
    result = runner.invoke(app, ["validate", str(broken_repo)])
    assert result.exit_code == 1
    assert "✗ bad" in result.stdout
    assert "batching.max_batch: unknown key" in result.stdout
    assert "✓ aff" in result.stdout
    assert "1 of 4 models have problems" in result.stderr


def test_validate_checks_eval_data(repo: Path) -> None:
    (repo / "aff" / "model.yaml").write_text(
        "eval: {data: eval.jsonl, metric: accuracy}\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["validate", str(repo)])
    assert result.exit_code == 1
    assert "✗ aff" in result.stdout
    assert f"eval data {repo / 'aff' / 'eval.jsonl'} does not exist" in result.stdout


def test_validate_empty_repo(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "holds no model folders" in result.stderr


def test_predict_json_value(repo: Path) -> None:
    result = runner.invoke(app, ["predict", "aff", "[0, 1, 0, 0]", "--repo", str(repo), "--json"])
    assert result.exit_code == 0, result.output
    prediction = json.loads(result.stdout)
    weight, bias = onnx_models.affine_weights()
    np.testing.assert_allclose(prediction["logits"], weight[1] + bias, rtol=1e-5)


def test_predict_several_values_print_one_line_each(repo: Path) -> None:
    result = runner.invoke(
        app, ["predict", "aff", "[1, 0, 0, 0]", "[0, 0, 0, 1]", "-r", str(repo), "--json"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    weight, bias = onnx_models.affine_weights()
    assert len(lines) == 2
    np.testing.assert_allclose(json.loads(lines[1])["logits"], weight[3] + bias, rtol=1e-5)


def test_predict_key_value_features(repo: Path) -> None:
    args = ["predict", "house", "rooms=3", "area=120.5", "age=7", "--repo", str(repo), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    weight, bias = onnx_models.linear_regressor_weights(features=3)
    raw = float((np.array([3.0, 120.5, 7.0], dtype=np.float32) @ weight + bias)[0])
    assert json.loads(result.stdout)["price"] == pytest.approx(raw * 10.0 + 100.0, rel=1e-4)


def test_predict_key_value_plain_output(repo: Path) -> None:
    result = runner.invoke(app, ["predict", "house", "rooms=1", "area=0", "age=0", "-r", str(repo)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("price=")


def test_predict_image_file(repo: Path, tmp_path: Path) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, size=(8, 8), dtype=np.uint8)
    path = tmp_path / "digit.png"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    weight, bias = onnx_models.image_classifier_weights()
    logits = (pixels.astype(np.float32) / 255.0).reshape(-1) @ weight + bias
    expected = ["zero", "one", "two"][int(np.argmax(logits))]
    result = runner.invoke(app, ["predict", "digits", str(path), "-r", str(repo)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{expected}  (score ")
    assert "top: " in result.stdout


def test_predict_json_b64_instance_with_base64_padding(repo: Path) -> None:
    # A V1 binary instance, {"b64": "..."}, usually ends in "=" padding; it is a JSON value,
    # not a key=value feature.
    pixels = np.random.default_rng(3).integers(0, 256, size=(8, 8), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    assert encoded.endswith("=")
    weight, bias = onnx_models.image_classifier_weights()
    logits = (pixels.astype(np.float32) / 255.0).reshape(-1) @ weight + bias
    expected = ["zero", "one", "two"][int(np.argmax(logits))]
    instance = json.dumps({"b64": encoded})
    result = runner.invoke(app, ["predict", "digits", instance, "-r", str(repo), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["label"] == expected


def test_predict_a_bad_instance_exits_1(repo: Path) -> None:
    result = runner.invoke(app, ["predict", "aff", "[1, 2]", "-r", str(repo)])
    assert result.exit_code == 1
    assert "per item shape [2]" in result.stderr


def test_predict_mixing_features_and_values(repo: Path) -> None:
    result = runner.invoke(app, ["predict", "house", "rooms=1", "[1]", "-r", str(repo)])
    assert result.exit_code == 1
    assert "either key=value features or files/values" in result.stderr


def test_predict_text_that_is_not_json_goes_in_as_text(repo: Path) -> None:
    """A numeric model then refuses it with its own message."""
    result = runner.invoke(app, ["predict", "aff", "not-json", "-r", str(repo)])
    assert result.exit_code == 1
    assert "not-json: input 'x'" in result.stderr


def test_predict_unknown_model(repo: Path) -> None:
    result = runner.invoke(app, ["predict", "ghost", "[1]", "-r", str(repo)])
    assert result.exit_code == 1
    assert "unknown model 'ghost'" in result.stderr


def test_predict_model_that_did_not_load(broken_repo: Path) -> None:
    result = runner.invoke(app, ["predict", "bad", "[1]", "-r", str(broken_repo)])
    assert result.exit_code == 1
    assert "model 'bad' did not load" in result.stderr


def test_a_long_json_value_is_not_mistaken_for_a_path() -> None:
    long_list = json.dumps([float(i) for i in range(200)])
    assert len(long_list) > 255
    assert _instances([long_list]) == [(long_list, [float(i) for i in range(200)])]


def test_serve_refuses_bad_monitoring_options(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from inferd.cli import app

    cases = [
        (["--price-per-hour", "-1"], "--price-per-hour must be a finite number of at least 0"),
        (["--price-per-hour", "1", "--price-per-core-hour", "1"], "not both"),
        (["--monitor-interval", "0"], "--monitor-interval must be a positive number"),
        (["--otel-exporter", "zipkin"], "--otel-exporter is otlp or console"),
    ]
    for options, says in cases:
        done = CliRunner().invoke(app, ["serve", str(tmp_path), *options])
        assert done.exit_code == 1 and says in done.output, (options, done.output)
