"""Several workers' metrics added up as one scrape answers them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from inferd.monitor.merging import merge_expositions
from inferd.monitor.metrics import Metrics


def _metrics(queue_depth: int = 0, outbox: int = 0) -> Metrics:
    return Metrics(
        queues=lambda: [("digits", "1", queue_depth, 0)],
        known_models=lambda name: True,
        actions=lambda: {("digits", "pending"): outbox},
    )


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_counters_and_histograms_are_summed() -> None:
    first, second = _metrics(), _metrics()
    for _ in range(3):
        first.count("digits", "v2", 200)
    second.count("digits", "v2", 200)
    second.count("digits", "v2", 400)
    first.stage("digits", "total").observe(0.002)
    second.stage("digits", "total").observe(0.2)
    second.stage("digits", "total").observe(0.3)
    merged = _samples(merge_expositions([first.render(), second.render()]))
    assert (
        merged[
            ("inferd_requests_total", (("model", "digits"), ("protocol", "v2"), ("status", "200")))
        ]
        == 4
    )
    assert (
        merged[
            ("inferd_requests_total", (("model", "digits"), ("protocol", "v2"), ("status", "400")))
        ]
        == 1
    )
    total = (("model", "digits"), ("stage", "total"))
    assert merged[("inferd_stage_seconds_count", total)] == 3
    assert abs(merged[("inferd_stage_seconds_sum", total)] - 0.502) < 1e-9
    assert merged[("inferd_stage_seconds_bucket", (("le", "0.0025"), *total))] == 1
    assert merged[("inferd_stage_seconds_bucket", (("le", "+Inf"), *total))] == 3


def test_a_load_gauge_is_summed_and_a_shared_fact_is_taken_once() -> None:
    first, second = _metrics(queue_depth=2, outbox=7), _metrics(queue_depth=5, outbox=7)
    merged = _samples(merge_expositions([first.render(), second.render()]))
    assert merged[("inferd_queue_depth", (("model", "digits"), ("version", "1")))] == 7
    # Both workers read the same outbox in the one store: 7 actions, not 14.
    assert merged[("inferd_actions_in_outbox", (("model", "digits"), ("state", "pending")))] == 7


def test_slo_attainment_is_weighted_by_the_requests_behind_it() -> None:
    first, second = _metrics(), _metrics()
    for _ in range(3):
        first.within_objective("digits", "1", 0.1, 0.01)  # met
    second.within_objective("digits", "1", 0.1, 0.5)  # missed
    merged = _samples(merge_expositions([first.render(), second.render()]))
    assert merged[("inferd_slo_attainment", (("model", "digits"),))] == 0.75
    assert merged[("inferd_slo_window_requests", (("model", "digits"),))] == 4


def test_one_exposition_comes_back_as_it_was() -> None:
    alone = _metrics(queue_depth=3)
    alone.count("digits", "v1", 200)
    assert _samples(merge_expositions([alone.render()])) == _samples(alone.render())
