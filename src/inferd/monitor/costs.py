"""What one prediction cost: its CPU (and GPU) time turned into joules, money and CO2e.

The time comes from the batch it ran in (`pipeline/usage.py`, shared out by work); the
joules from `energy.py`; the money from the price the operator gives: `--price-per-hour` for
the whole machine (shared by its cores, so a CPU-second costs price / cores / 3600) or
`--price-per-core-hour`. Idle time is nobody's prediction and is not charged. GPU time is
charged energy but no separate price (a machine's hourly price covers its GPU). gCO2e needs
the grid's intensity (`--grid-intensity`, grams per kWh).
"""

from __future__ import annotations

from dataclasses import dataclass

from inferd.hardware import cpu
from inferd.monitor.energy import CpuPower, GpuPower, gpu_power

JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Pricing:
    """What the operator told `inferd serve` about money and carbon."""

    price_per_hour: float | None = None
    """The machine's price per hour, all cores."""
    price_per_core_hour: float | None = None
    currency: str = "USD"
    cpu_watts: float | None = None
    """Watts per busy core for the estimate (RAPL counters win where readable)."""
    grid_gco2_per_kwh: float | None = None

    def per_cpu_second(self, cores: int) -> float | None:
        if self.price_per_core_hour is not None:
            return self.price_per_core_hour / 3600
        if self.price_per_hour is not None:
            return self.price_per_hour / max(1, cores) / 3600
        return None

    def describe(self, cores: int) -> str:
        if self.price_per_core_hour is not None:
            return f"{self.price_per_core_hour:g} {self.currency} per core-hour"
        if self.price_per_hour is not None:
            return f"{self.price_per_hour:g} {self.currency} per hour for {cores} cores"
        return "no price given (--price-per-hour or --price-per-core-hour)"


@dataclass(frozen=True, slots=True)
class Charge:
    """One prediction's costs. `cpu_joules`/`gpu_joules` keep their methods apart, so the
    metrics stay exact per method; `method` names both for a log row ("rapl", "nvml+rapl")."""

    cpu_joules: float
    cpu_method: str
    gpu_joules: float
    gpu_method: str | None
    cost: float | None
    co2e_g: float | None

    @property
    def joules(self) -> float:
        return self.cpu_joules + self.gpu_joules

    @property
    def method(self) -> str:
        if self.gpu_method is None:
            return self.cpu_method
        return f"{self.gpu_method}+{self.cpu_method}"


class Accounting:
    """Turns CPU and GPU seconds into a `Charge`; one per server."""

    def __init__(
        self,
        pricing: Pricing,
        cpu_power: CpuPower | None = None,
        gpu: GpuPower | None = None,
        cores: int | None = None,
        find_gpu: bool = True,
    ) -> None:
        self.pricing = pricing
        self.cpu_power = cpu_power or CpuPower(pricing.cpu_watts)
        self.gpu = gpu if gpu is not None or not find_gpu else gpu_power()
        self.cores = cores or cpu().cores
        self._per_cpu_second = pricing.per_cpu_second(self.cores)
        self._co2_per_joule = (
            pricing.grid_gco2_per_kwh / JOULES_PER_KWH
            if pricing.grid_gco2_per_kwh is not None
            else None
        )

    def charge(self, cpu_s: float, gpu_s: float = 0.0) -> Charge:
        rate = self.cpu_power.rate()
        cpu_joules = cpu_s * rate.watts
        gpu_joules, gpu_method = 0.0, None
        if gpu_s > 0 and self.gpu is not None:
            gpu_rate = self.gpu.rate()
            gpu_joules, gpu_method = gpu_s * gpu_rate.watts, gpu_rate.method
        per_second = self._per_cpu_second
        co2 = self._co2_per_joule
        return Charge(
            cpu_joules=cpu_joules,
            cpu_method=rate.method,
            gpu_joules=gpu_joules,
            gpu_method=gpu_method,
            cost=cpu_s * per_second if per_second is not None else None,
            co2e_g=(cpu_joules + gpu_joules) * co2 if co2 is not None else None,
        )

    def notes(self) -> list[str]:
        """How the figures are made, for reports."""
        priced = self.pricing.per_cpu_second(self.cores) is not None
        describe = self.pricing.describe(self.cores)
        notes = [f"cost: CPU time x {describe}" if priced else f"cost: {describe}"]
        if self.cpu_power.note:
            notes.append(self.cpu_power.note)
        if self.pricing.grid_gco2_per_kwh is not None:
            notes.append(f"CO2e: {self.pricing.grid_gco2_per_kwh:g} g per kWh of the grid")
        return notes


__all__ = ["JOULES_PER_KWH", "Accounting", "Charge", "Pricing"]
