"""A prediction's CPU time into joules, money and CO2e, each with how it was found."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferd.monitor.costs import JOULES_PER_KWH, Accounting, Pricing
from inferd.monitor.energy import CpuPower, Rate


class _Gpu:
    def rate(self) -> Rate:
        return Rate(300.0, "nvml")


def _estimate(watts: float, tmp_path: Path) -> CpuPower:
    return CpuPower(watts_per_core=watts, root=tmp_path / "no-powercap")


def test_machine_price_is_shared_by_its_cores(tmp_path: Path) -> None:
    accounting = Accounting(
        Pricing(price_per_hour=3.6, grid_gco2_per_kwh=400.0),
        cpu_power=_estimate(10.0, tmp_path),
        cores=4,
        find_gpu=False,
    )
    charge = accounting.charge(cpu_s=2.0)
    assert charge.cost == pytest.approx(2.0 * 3.6 / 4 / 3600)
    assert (charge.joules, charge.method) == (20.0, "estimate")
    assert charge.co2e_g == pytest.approx(20.0 * 400.0 / JOULES_PER_KWH)
    assert any("3.6 USD per hour for 4 cores" in note for note in accounting.notes())


def test_price_per_core_hour_and_no_price(tmp_path: Path) -> None:
    power = _estimate(5.0, tmp_path)
    per_core = Accounting(Pricing(price_per_core_hour=0.36), cpu_power=power, find_gpu=False)
    assert per_core.charge(10.0).cost == pytest.approx(0.001)
    unpriced = Accounting(Pricing(), cpu_power=power, find_gpu=False)
    charge = unpriced.charge(1.0)
    assert charge.cost is None and charge.co2e_g is None and charge.joules == 5.0
    assert any("no price given" in note for note in unpriced.notes())


def test_gpu_time_is_charged_at_the_gpus_measured_power(tmp_path: Path) -> None:
    accounting = Accounting(
        Pricing(),
        cpu_power=_estimate(10.0, tmp_path),
        gpu=_Gpu(),
        find_gpu=False,  # type: ignore[arg-type]
    )
    charge = accounting.charge(cpu_s=0.001, gpu_s=0.002)
    assert charge.gpu_joules == pytest.approx(0.6) and charge.cpu_joules == pytest.approx(0.01)
    assert charge.method == "nvml+estimate"
    assert accounting.charge(cpu_s=0.001).method == "estimate"  # no GPU time: CPU only
