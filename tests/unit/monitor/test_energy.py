"""The energy readers: RAPL counters on a powercap tree the test builds (advancing and
wrapping), and the fall-back to the estimate when the tree is fake or unreadable."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferd.monitor.energy import CpuPower, Powercap, Unreadable, busy_cpu_seconds


def _domain(root: Path, name: str, energy_uj: int, wrap_uj: int) -> Path:
    domain = root / name
    domain.mkdir(parents=True)
    (domain / "name").write_text("package-0\n")
    (domain / "energy_uj").write_text(f"{energy_uj}\n")
    (domain / "max_energy_range_uj").write_text(f"{wrap_uj}\n")
    return domain


def _stat(path: Path, busy_ticks: int) -> Path:
    # cpu user nice system idle iowait irq softirq steal
    path.write_text(f"cpu  {busy_ticks} 0 0 5000 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\n")
    return path


def test_counters_advance_and_wrap_around(tmp_path: Path) -> None:
    package = _domain(tmp_path, "intel-rapl:0", 990_000_000, 1_000_000_000)
    _domain(tmp_path, "intel-rapl:0:0", 5, 1_000_000_000)  # a subdomain: not counted twice
    second = _domain(tmp_path, "intel-rapl:1", 0, 1_000_000_000)
    reader = Powercap(tmp_path)
    assert reader.joules() == 0.0
    (package / "energy_uj").write_text("999000000")  # +9 J
    (second / "energy_uj").write_text("1000000")  # +1 J
    assert reader.joules() == pytest.approx(10.0)
    (package / "energy_uj").write_text("4000000")  # wrapped: +1 J to the top, +4 J after
    assert reader.joules() == pytest.approx(15.0)


def test_rapl_rate_is_package_joules_per_busy_cpu_second(tmp_path: Path) -> None:
    package = _domain(tmp_path / "powercap", "intel-rapl:0", 0, 2**32)
    stat = _stat(tmp_path / "stat", 100)
    now = [0.0]
    power = CpuPower(root=tmp_path / "powercap", stat=stat, clock=lambda: now[0])
    assert power.note == ""
    first = power.rate()
    assert first.method == "estimate"  # nothing measured yet: said so, not a made-up rapl
    (package / "energy_uj").write_text(str(30_000_000))  # 30 J ...
    _stat(stat, 100 + 200)  # ... over 2 busy CPU seconds (100 ticks a second)
    now[0] = 5.0
    rate = power.rate()
    assert rate.method == "rapl"
    assert rate.watts == pytest.approx(30.0 / (200 / 100))  # SC_CLK_TCK is 100 on Linux


def test_a_fake_powercap_tree_falls_back_to_the_estimate_and_says_why(tmp_path: Path) -> None:
    domain = tmp_path / "intel-rapl:0"
    domain.mkdir()
    (domain / "energy_uj").write_text("not a number")
    (domain / "max_energy_range_uj").write_text("100")
    power = CpuPower(watts_per_core=7.5, root=tmp_path)
    rate = power.rate()
    assert (rate.method, rate.watts) == ("estimate", 7.5)
    assert "RAPL counters cannot be used" in power.note and "energy_uj" in power.note
    assert "--cpu-watts" in power.note


def test_no_powercap_at_all_is_the_default_estimate(tmp_path: Path) -> None:
    power = CpuPower(root=tmp_path / "absent")
    assert power.rate().method == "estimate"
    assert power.rate().watts == 10.0
    assert "no RAPL package domains" in power.note


def test_a_counter_that_becomes_unreadable_falls_back(tmp_path: Path) -> None:
    package = _domain(tmp_path / "powercap", "intel-rapl:0", 0, 2**32)
    stat = _stat(tmp_path / "stat", 100)
    now = [0.0]
    power = CpuPower(root=tmp_path / "powercap", stat=stat, clock=lambda: now[0])
    (package / "energy_uj").unlink()
    now[0] = 5.0
    assert power.rate().method == "estimate"
    assert "cannot read" in power.note


def test_a_missing_domain_file_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "intel-rapl:0").mkdir()
    with pytest.raises(Unreadable, match=r"energy_uj|max_energy_range_uj"):
        Powercap(tmp_path)


def test_busy_cpu_seconds_reads_proc_stat() -> None:
    assert busy_cpu_seconds() > 0
