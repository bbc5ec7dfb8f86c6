"""`inferd optimize --quantize` and `inferd devices`, run as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ruamel.yaml import YAML

from inferd.hardware import cpu
from tests.e2e.conftest import BUNDLED
from tests.e2e.test_cli import inferd


def test_quantize_writes_the_next_version_and_says_what_it_measured(tmp_path: Path) -> None:
    shutil.copytree(BUNDLED / "digits", tmp_path / "digits")
    done = inferd(
        "optimize", "digits", "--quantize", "static-int8", "--allow-slower", "--repo", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert "wrote digits v2 (static-int8 of v1): accuracy" in done.stdout
    assert "still serving v1" in done.stdout
    data = YAML(typ="safe").load((tmp_path / "digits" / "model.yaml").read_text())
    assert data["versions"] == [1]
    assert data["variants"][2]["measured"]["cpu"] == cpu().describe()
    assert (tmp_path / "digits" / "2" / "model.onnx").is_file()


def test_a_refused_quantization_fails_and_writes_nothing(tmp_path: Path) -> None:
    shutil.copytree(BUNDLED / "digits", tmp_path / "digits")
    before = (tmp_path / "digits" / "model.yaml").read_text()
    done = inferd("optimize", "digits", "--quantize", "dynamic-int8", "--repo", str(tmp_path))
    assert done.returncode == 1
    assert "slower than its source" in done.stderr and "--allow-slower" in done.stderr
    assert (tmp_path / "digits" / "model.yaml").read_text() == before
    assert sorted(p.name for p in (tmp_path / "digits").iterdir()) == [
        "1",
        "eval",
        "labels.txt",
        "model.yaml",
    ]


def test_an_unknown_method_is_a_clear_error(tmp_path: Path) -> None:
    shutil.copytree(BUNDLED / "digits", tmp_path / "digits")
    done = inferd("optimize", "digits", "--quantize", "int4", "--repo", str(tmp_path))
    assert done.returncode == 1
    assert "unknown quantization method 'int4'" in done.stderr
    assert "dynamic-int8" in done.stderr and "fp16" in done.stderr


def test_devices_lists_the_cpu_and_providers() -> None:
    done = inferd("devices")
    assert done.returncode == 0, done.stderr
    assert f"CPU: {cpu().model}" in done.stdout
    assert "CPUExecutionProvider" in done.stdout and "lacks:" in done.stdout
    assert "runtime.device: auto tries CPUExecutionProvider" in done.stdout


def test_devices_json() -> None:
    done = inferd("devices", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["cpu"]["features"] == list(cpu().features)
    assert found["cpu"]["vnni"] == cpu().vnni
    names = {p["name"]: p["device"] for p in found["providers"]}
    assert names["CPUExecutionProvider"] is True
    assert names.get("AzureExecutionProvider", False) is False
    assert "AzureExecutionProvider" not in found["auto_tries"]
    assert isinstance(found["gpus"], list) and isinstance(found["lacking"], list)
