"""Writing a variant: whole or not at all, recorded in model.yaml, never served on its own."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from inferd.errors import SpecError
from inferd.optimize.variants import served_versions, tool_versions, write_variant
from inferd.repository import load_model
from inferd.spec import VariantSpec, load_spec
from tests.unit.optimize.conftest import DIGITS


def copy_of_v1(folder: Path) -> None:
    shutil.copy2(DIGITS / "1" / "model.onnx", folder / "model.onnx")


def test_a_failing_build_leaves_no_folder_and_model_yaml_untouched(digits: Path) -> None:
    before = (digits / "model.yaml").read_bytes()

    def build(folder: Path) -> None:
        copy_of_v1(folder)  # half-written when it fails
        raise SpecError("measured slower")

    with pytest.raises(SpecError, match="measured slower"):
        write_variant(digits, VariantSpec(method="fp16", source=1), build)
    assert sorted(p.name for p in digits.iterdir()) == ["1", "eval", "labels.txt", "model.yaml"]
    assert (digits / "model.yaml").read_bytes() == before


def test_an_interrupted_build_leaves_nothing_either(digits: Path) -> None:
    def build(folder: Path) -> None:
        copy_of_v1(folder)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_variant(digits, VariantSpec(method="fp16", source=1), build)
    assert not [p for p in digits.iterdir() if p.name.startswith(".") or p.name == "2"]


def test_the_variant_is_recorded_and_the_served_version_pinned(digits: Path) -> None:
    comment = "# The bundled image-classification example"
    assert comment in (digits / "model.yaml").read_text()
    record = VariantSpec(method="static-int8", source=1)

    def build(folder: Path) -> VariantSpec:
        copy_of_v1(folder)
        return record.model_copy(
            update={"measured": {"speedup": 1.23456789}, "tools": tool_versions(["numpy"])}
        )

    assert write_variant(digits, record, build) == 2
    text = (digits / "model.yaml").read_text()
    assert comment in text  # the people's comments are kept
    spec = load_spec(digits)
    assert spec is not None and spec.versions == [1]
    written = spec.variants[2]
    assert written.method == "static-int8" and written.source == 1
    assert written.measured == {"speedup": 1.23457}  # rounded for reading
    assert "numpy" in written.tools
    entry = load_model(digits)
    assert sorted(entry.versions) == [1]  # the variant is not served on its own
    assert sorted(load_model(digits, only=[2]).versions) == [2]  # but it loads


def test_a_second_variant_keeps_the_pin_and_the_first_record(digits: Path) -> None:
    for method in ("static-int8", "fp16"):
        write_variant(digits, VariantSpec(method=method, source=1), copy_of_v1)
    spec = load_spec(digits)
    assert spec is not None and spec.versions == [1]
    assert {v: r.method for v, r in spec.variants.items()} == {2: "static-int8", 3: "fp16"}


def test_a_model_without_model_yaml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bare" / "1").mkdir(parents=True)
    with pytest.raises(SpecError, match=r"no model\.yaml"):
        write_variant(tmp_path / "bare", VariantSpec(method="fp16", source=1), copy_of_v1)
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["1"]


@pytest.mark.parametrize("style", ["  - ", "- "])
def test_a_variant_record_keeps_the_files_list_layout(digits: Path, style: str) -> None:
    path = digits / "model.yaml"
    before = path.read_text()  # the bundled file writes "  - item"
    if style == "- ":
        before = before.replace("\n  - ", "\n- ").replace("\n    ", "\n  ")
    path.write_text(before)
    write_variant(digits, VariantSpec(method="fp16", source=1), copy_of_v1)
    after = path.read_text()
    kept = [line for line in before.splitlines() if not line.startswith("versions")]
    assert all(line in after.splitlines() for line in kept)  # nothing reflowed
    spec = load_spec(digits)
    assert spec is not None and spec.variants[2].method == "fp16" and spec.preprocess


def test_the_version_and_model_yaml_keep_ordinary_permissions(digits: Path) -> None:
    (digits / "model.yaml").chmod(0o640)
    previous = os.umask(0o022)
    try:
        write_variant(digits, VariantSpec(method="fp16", source=1), copy_of_v1)
    finally:
        os.umask(previous)
    assert (digits / "2").stat().st_mode & 0o777 == 0o755  # not mkdtemp's private 0700
    assert (digits / "model.yaml").stat().st_mode & 0o777 == 0o640  # the file's own mode


def test_the_served_versions_are_those_model_yaml_serves(digits: Path) -> None:
    write_variant(digits, VariantSpec(method="fp16", source=1), copy_of_v1)
    assert served_versions(digits) == (1,)  # pinned: the variant waits to be chosen
    data = yaml.safe_load((digits / "model.yaml").read_text())
    data["versions"] = "all"
    (digits / "model.yaml").write_text(yaml.safe_dump(data))
    assert served_versions(digits) == (1, 2)
