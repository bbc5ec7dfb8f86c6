"""The CPU description reports read: model, features found and lacking, VNNI."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferd.hardware import Gpu, cpu, gpus, parse_nvidia_smi


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(
        "processor\t: 0\nmodel name\t: Example CPU 9000\n"
        f"flags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\nmodel name\t: Example CPU 9000\n"
        f"flags\t\t: fpu sse2 {flags}\n"
    )
    return path


def test_a_cpu_without_vnni_says_so(tmp_path: Path) -> None:
    found = cpu(_cpuinfo(tmp_path, "avx2 fma avx512f"))
    assert found.model == "Example CPU 9000"
    assert found.features == ("avx2", "fma", "avx512")
    assert not found.vnni
    assert "avx512-vnni" in found.lacks and "amx" in found.lacks
    assert "lacks" in found.describe() and "avx512-vnni" in found.describe()


def test_vnni_and_amx_are_found(tmp_path: Path) -> None:
    found = cpu(_cpuinfo(tmp_path, "avx2 avx512f avx512_vnni amx_tile amx_int8"))
    assert found.vnni
    assert {"avx512-vnni", "amx", "amx-int8"} <= set(found.features)
    assert "avx512-vnni" not in found.lacks


def test_no_cpuinfo_still_describes_the_machine(tmp_path: Path) -> None:
    found = cpu(tmp_path / "missing")
    assert found.features == () and found.cores >= 1 and found.model


def test_nvidia_smi_lines_become_gpus() -> None:
    text = "0, NVIDIA H200, 143771, 570.86.15\n1, NVIDIA L4, [N/A], 570.86.15\n\nNo devices\n"
    assert parse_nvidia_smi(text) == [
        Gpu(0, "NVIDIA H200", 143771, "570.86.15"),
        Gpu(1, "NVIDIA L4", None, "570.86.15"),
    ]


def test_gpus_says_why_none_were_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    found, note = gpus()
    assert found == [] and "nvidia-smi is not on PATH" in note
