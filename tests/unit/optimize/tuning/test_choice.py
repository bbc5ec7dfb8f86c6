"""The bounds, the Pareto front and the choice."""

from __future__ import annotations

import pytest

from inferd.errors import SpecError
from inferd.optimize.tuning.choice import Bounds, Row, choose, closest, metric_ok, pareto_front
from inferd.optimize.tuning.search import Measurement
from inferd.optimize.tuning.space import Config


def row(
    version: int,
    value: float,
    rate: float | None,
    p99: float = 4.0,
    rung: int = 1,
    threads: int = 1,
    limit: float | None = 0.95,
) -> Row:
    config = Config(version, "cpu", threads, 8, 0.0)
    return Row(
        config,
        value,
        Measurement(rate, p99, rate or 0.0),
        rung,
        metric_ok("accuracy", value, limit),
    )


def test_the_fastest_that_meets_both_bounds_is_chosen() -> None:
    rows = [row(1, 0.99, 100.0), row(2, 0.97, 180.0), row(3, 0.90, 300.0), row(4, 0.99, None, 7.0)]
    chosen = choose(rows, "accuracy")
    assert chosen is not None and chosen.config.version == 2  # v3 is faster but too inaccurate


def test_a_slower_or_less_accurate_variant_is_never_chosen() -> None:
    rows = [row(1, 0.99, 200.0), row(2, 0.98, 150.0), row(3, 0.99, 120.0)]
    chosen = choose(rows, "accuracy")
    assert chosen is not None and chosen.config.version == 1


def test_a_short_screening_figure_never_beats_a_long_one() -> None:
    rows = [row(1, 0.99, 500.0, rung=0), row(2, 0.99, 200.0, rung=2)]
    chosen = choose(rows, "accuracy")
    assert chosen is not None and chosen.config.version == 2


def test_ties_go_to_the_better_metric_then_fewer_threads() -> None:
    rows = [
        row(1, 0.97, 200.0, threads=2),
        row(2, 0.99, 200.0, threads=2),
        row(2, 0.99, 200.0, threads=1),
    ]
    chosen = choose(rows, "accuracy")
    assert chosen is not None and (chosen.config.version, chosen.config.threads) == (2, 1)


def test_pareto_front_keeps_only_undominated_points() -> None:
    rows = [row(1, 0.99, 100.0), row(2, 0.97, 180.0), row(3, 0.96, 150.0), row(4, 0.90, 300.0)]
    front = {c.version for c in pareto_front(rows, "accuracy")}
    assert front == {1, 2, 4}  # v3 is slower and less accurate than v2


def test_error_metrics_are_better_lower() -> None:
    bounds = Bounds(5.0, max_drop=0.1)
    assert bounds.limit("mae", 1.0) == pytest.approx(1.1)
    assert bounds.limit("accuracy", 0.9) == pytest.approx(0.8)
    assert metric_ok("mae", 1.05, 1.1) and not metric_ok("mae", 1.2, 1.1)


def test_nothing_meeting_gives_none_and_the_closest() -> None:
    rows = [row(1, 0.99, None, p99=9.0), row(2, 0.99, None, p99=6.0), row(3, 0.5, None, p99=5.5)]
    assert choose(rows, "accuracy") is None
    near = closest(rows, Bounds(5.0))
    assert [r.config.version for r in near] == [2, 1, 3]  # metric met first, then nearest p99


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p99_ms": 0}, "--p99-ms"),
        ({"p99_ms": 5, "min_metric": 0.9, "max_drop": 0.01}, "not both"),
        ({"p99_ms": 5, "max_drop": -1}, "--max-drop"),
    ],
)
def test_bad_bounds_say_what_to_fix(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Bounds(**kwargs)
