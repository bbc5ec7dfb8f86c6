"""Successive halving on a fake measuring function: who is measured how long, who wins."""

from __future__ import annotations

import pytest

from inferd.optimize.tuning.search import (
    FULL,
    Effort,
    Load,
    Measurement,
    plan,
    speed_key,
    successive_halving,
)
from inferd.optimize.tuning.space import Config, build_space

SEARCH = Load()


def space(count: int) -> list[Config]:
    return [Config(1, "cpu", 1, batch, 0.0) for batch in range(2, 2 + count)]


class FakeMeasure:
    """Rate = the config's true speed plus noise that shrinks with the effort: the short
    screening run over-rates config 3 a little, the longer one finds the truth."""

    def __init__(self, speeds: dict[int, float], noise: dict[int, float] | None = None) -> None:
        self.speeds = speeds
        self.noise = noise or {}
        self.calls: list[tuple[int, Effort]] = []
        self.screening: Effort | None = None

    def __call__(self, config: Config, effort: Effort) -> Measurement:
        self.calls.append((config.max_batch_size, effort))
        speed = self.speeds[config.max_batch_size]
        self.screening = self.screening or effort
        if effort == self.screening:
            speed += self.noise.get(config.max_batch_size, 0.0)
        rate = speed if speed > 0 else None
        return Measurement(rate, 4.0 if rate else 9.0, speed, seconds=effort.estimate_s(SEARCH))


def test_small_space_is_measured_whole_at_full_length() -> None:
    schedule = plan(3, budget_s=3 * FULL.estimate_s(SEARCH) + 1, load=SEARCH)
    assert not schedule.adaptive
    assert schedule.rungs == ((3, FULL),)
    assert "measured whole" in schedule.describe()


def test_big_space_is_halved_with_longer_rungs() -> None:
    schedule = plan(20, budget_s=240, load=SEARCH)
    assert schedule.adaptive
    assert [count for count, _ in schedule.rungs] == [20, 7, 3, 2]
    lengths = [effort.duration_s for _, effort in schedule.rungs]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
    assert "successive halving" in schedule.describe()
    assert schedule.estimate_s() <= 240 * 1.1


def test_a_budget_too_small_even_to_screen_says_so() -> None:
    schedule = plan(20, budget_s=30, load=SEARCH)
    assert schedule.estimate_s() > 30
    assert "over the 30 s budget" in schedule.describe()


def test_only_the_fastest_third_is_promoted_and_the_truth_wins() -> None:
    configs = space(9)
    speeds = {c.max_batch_size: float(c.max_batch_size) for c in configs}  # 2..10
    fake = FakeMeasure(speeds, noise={5: 6.0})  # batch 5 looks like 11 when screened briefly
    schedule = plan(len(configs), budget_s=150, load=SEARCH)
    assert schedule.rungs[0][1] != schedule.rungs[1][1]
    measured = successive_halving(configs, fake, schedule)
    first_rung = [b for b, e in fake.calls[: len(configs)]]
    assert sorted(first_rung) == sorted(speeds)
    second = {b for b, _ in fake.calls[len(configs) : len(configs) + 3]}
    assert second == {5, 10, 9}  # the three fastest of the screening run
    best = max(measured.values(), key=lambda m: (m.rung, speed_key(m.measurement)))
    assert best.config.max_batch_size == 10
    assert measured[configs[0]].rung == 0  # screened out, still reported
    assert len(measured[configs[-1]].history) == len(schedule.rungs)


def test_ineligible_configs_are_measured_once_never_promoted() -> None:
    configs = space(6)
    speeds = {c.max_batch_size: float(c.max_batch_size) for c in configs}
    fake = FakeMeasure(speeds)
    schedule = plan(len(configs), budget_s=20, load=SEARCH)
    assert schedule.adaptive
    measured = successive_halving(configs, fake, schedule, eligible=lambda c: c.max_batch_size != 7)
    assert [b for b, _ in fake.calls].count(7) == 1
    assert measured[Config(1, "cpu", 1, 7, 0.0)].rung == 0


def test_nothing_meets_the_bound_stops_after_screening() -> None:
    configs = space(6)
    fake = FakeMeasure({c.max_batch_size: 0.0 for c in configs})
    measured = successive_halving(configs, fake, plan(6, budget_s=20, load=SEARCH))
    assert len(fake.calls) == 6
    assert all(not m.measurement.meets for m in measured.values())


def test_effort_fits_the_seconds_it_is_given() -> None:
    for seconds in (3.0, 8.0, 15.0, 40.0):
        effort = Effort.for_seconds(seconds, SEARCH)
        assert (
            effort.estimate_s(SEARCH) <= max(seconds, Effort(0.15, 0.4, 1).estimate_s(SEARCH)) * 1.2
        )
    assert Effort.for_seconds(30, Load("rate", 10)).duration_s == FULL.duration_s


def test_space_drops_delays_that_cannot_differ() -> None:
    configs = build_space([1, 2], ["cpu"], [1, 2], [1, 8], [0.0, 0.5])
    assert len(configs) == 2 * 2 * (1 + 2)
    assert all(c.max_delay_ms == 0.0 for c in configs if c.max_batch_size == 1)
    names = {c.folder("digits") for c in configs}
    assert len(names) == len(configs)
    assert all("." not in name and ":" not in name for name in names)


def test_empty_dimension_is_an_error() -> None:
    from inferd.errors import SpecError

    with pytest.raises(SpecError, match="no threads"):
        build_space([1], ["cpu"], [], [8], [0.0])
