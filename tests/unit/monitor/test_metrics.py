"""Prometheus metrics: request counts, stage latencies, batch sizes, queue gauges, registries."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from inferd.monitor.metrics import STAGES, Metrics, _Counter, _Histogram


def _no_queues() -> Iterable[tuple[str, str, int, int]]:
    return []


def _metrics(
    known: set[str] | None = None,
    queues: list[tuple[str, str, int, int]] | None = None,
) -> Metrics:
    names = known if known is not None else set()
    states = queues if queues is not None else []
    return Metrics(queues=lambda: list(states), known_models=lambda name: name in names)


def _samples(metrics: Metrics, sample_name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of one series name in the rendered output, keyed by its sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == sample_name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _requests(metrics: Metrics, model: str, protocol: str, status: str) -> float | None:
    return metrics.registry.get_sample_value(
        "inferd_requests_total", {"model": model, "protocol": protocol, "status": status}
    )


# --- count() ------------------------------------------------------------------------------------


def test_count_labels_known_models_by_name() -> None:
    metrics = _metrics(known={"digits"})
    metrics.count("digits", "v2", 200)
    metrics.count("digits", "v2", 200)
    metrics.count("digits", "v1", 400)
    assert _requests(metrics, "digits", "v2", "200") == 2.0
    assert _requests(metrics, "digits", "v1", "400") == 1.0
    assert _requests(metrics, "-", "v2", "200") is None


def test_count_puts_unknown_models_under_a_dash() -> None:
    metrics = _metrics(known={"digits"})
    metrics.count("ghost", "v2", 404)
    metrics.count("spooky", "v2", 404)
    metrics.count("other", "v1", 404)
    assert _requests(metrics, "-", "v2", "404") == 2.0
    assert _requests(metrics, "-", "v1", "404") == 1.0
    assert _requests(metrics, "ghost", "v2", "404") is None
    assert _requests(metrics, "spooky", "v2", "404") is None


def test_count_asks_again_for_a_model_that_was_unknown() -> None:
    # A model that appears later (e.g. loaded by a reload) is then counted under its name.
    known: set[str] = set()
    metrics = _metrics(known=known)
    metrics.count("late", "v2", 200)
    known.add("late")
    metrics.count("late", "v2", 200)
    assert _requests(metrics, "-", "v2", "200") == 1.0
    assert _requests(metrics, "late", "v2", "200") == 1.0


# --- render() -----------------------------------------------------------------------------------


def test_render_has_request_counts() -> None:
    metrics = _metrics(known={"digits"})
    metrics.count("digits", "v2", 200)
    text = metrics.render().decode()
    assert "# TYPE inferd_requests_total counter" in text
    assert 'inferd_requests_total{model="digits",protocol="v2",status="200"} 1.0' in text
    assert "inferd_requests_created" not in text  # *_created series are disabled


def test_render_has_stage_histograms_with_buckets() -> None:
    metrics = _metrics()
    metrics.stage("digits", "model").observe(0.003)
    metrics.stage("digits", "model").observe(0.2)
    metrics.stage("digits", "queue").observe(0.00005)
    buckets = _samples(metrics, "inferd_stage_seconds_bucket")
    model_buckets = {
        dict(labels)["le"]: value
        for labels, value in buckets.items()
        if dict(labels)["stage"] == "model"
    }
    assert model_buckets["0.0025"] == 0.0
    assert model_buckets["0.005"] == 1.0
    assert model_buckets["0.25"] == 2.0
    assert model_buckets["+Inf"] == 2.0
    assert len(model_buckets) == 17  # 16 bounds and +Inf
    value = metrics.registry.get_sample_value(
        "inferd_stage_seconds_count", {"model": "digits", "stage": "queue"}
    )
    assert value == 1.0
    total = metrics.registry.get_sample_value(
        "inferd_stage_seconds_sum", {"model": "digits", "stage": "model"}
    )
    assert total is not None and abs(total - 0.203) < 1e-9


def test_stage_returns_the_same_child_each_time() -> None:
    metrics = _metrics()
    assert metrics.stage("m", "queue") is metrics.stage("m", "queue")
    assert metrics.stage("m", "queue") is not metrics.stage("m", "model")
    assert STAGES == ("queue", "preprocess", "model", "postprocess", "total")


def test_render_has_batch_sizes() -> None:
    metrics = _metrics()
    for size in (1, 3, 3, 40):
        metrics.observe_batch("digits", "2", size)
    labels = {"model": "digits", "version": "2"}
    get = metrics.registry.get_sample_value
    assert get("inferd_batch_size_count", labels) == 4.0
    assert get("inferd_batch_size_sum", labels) == 47.0
    assert get("inferd_batch_size_bucket", {**labels, "le": "1.0"}) == 1.0
    assert get("inferd_batch_size_bucket", {**labels, "le": "4.0"}) == 3.0
    assert get("inferd_batch_size_bucket", {**labels, "le": "32.0"}) == 3.0
    assert get("inferd_batch_size_bucket", {**labels, "le": "64.0"}) == 4.0
    assert "inferd_batch_size_bucket{" in metrics.render().decode()


def test_queue_gauges_are_read_at_scrape_time() -> None:
    states: list[tuple[str, str, int, int]] = [("digits", "1", 5, 1)]
    metrics = _metrics(queues=states)
    assert _samples(metrics, "inferd_queue_depth") == {(("model", "digits"), ("version", "1")): 5.0}
    assert _samples(metrics, "inferd_batches_running") == {
        (("model", "digits"), ("version", "1")): 1.0
    }
    states[:] = [("digits", "1", 0, 2), ("house", "3", 7, 0)]
    # _metrics copies the list on every call, so this shows a fresh read, not a cached one
    assert _samples(metrics, "inferd_queue_depth") == {
        (("model", "digits"), ("version", "1")): 0.0,
        (("model", "house"), ("version", "3")): 7.0,
    }
    assert _samples(metrics, "inferd_batches_running") == {
        (("model", "digits"), ("version", "1")): 2.0,
        (("model", "house"), ("version", "3")): 0.0,
    }


def test_queue_callback_is_not_called_until_a_scrape() -> None:
    calls: list[int] = []

    def queues() -> Iterable[tuple[str, str, int, int]]:
        calls.append(1)
        return [("m", "1", 2, 0)]

    metrics = Metrics(queues=queues, known_models=lambda name: True)
    assert calls == []  # the server builds Metrics before the DataPlane the callback reads
    metrics.render()
    assert calls == [1]
    metrics.render()
    assert calls == [1, 1]


def test_queue_gauges_with_no_models() -> None:
    metrics = Metrics(queues=_no_queues, known_models=lambda name: False)
    text = metrics.render().decode()
    assert "# TYPE inferd_queue_depth gauge" in text
    assert "# TYPE inferd_batches_running gauge" in text
    assert _samples(metrics, "inferd_queue_depth") == {}


# --- registries ---------------------------------------------------------------------------------


def test_two_metrics_do_not_share_a_registry() -> None:
    first = _metrics(known={"m"})
    second = _metrics(known={"m"})  # building a second one must not clash on metric names
    assert first.registry is not second.registry
    first.count("m", "v2", 200)
    first.observe_batch("m", "1", 4)
    first.stage("m", "total").observe(0.1)
    assert _requests(first, "m", "v2", "200") == 1.0
    assert _requests(second, "m", "v2", "200") is None
    get = second.registry.get_sample_value
    assert get("inferd_batch_size_count", {"model": "m", "version": "1"}) is None
    assert get("inferd_stage_seconds_count", {"model": "m", "stage": "total"}) is None
    assert "inferd_requests_total{" not in second.render().decode()


# --- the plain-number series against prometheus_client's own ------------------------------------

BOUNDS = (0.001, 0.01, 0.1, 1.0, 2.5)
VALUES = [0.0, 0.0005, 0.001, 0.0010001, 0.01, 0.05, 1.0, 2.5, 3.0, 1e9]


def _render(*collectors: Collector) -> str:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry).decode()


def test_histogram_renders_what_prometheus_client_renders() -> None:
    ours = _Histogram("x_seconds", "Doc", ["model", "stage"], BOUNDS)
    theirs = Histogram("x_seconds", "Doc", ["model", "stage"], buckets=BOUNDS, registry=None)
    for labels in [("a", "queue"), ("b", "model"), ("a", "model")]:
        ours.labels(*labels)
        theirs.labels(*labels)
    for value in VALUES:  # on, just above and between the bounds
        ours.labels("a", "queue").observe(value)
        theirs.labels("a", "queue").observe(value)
    ours.labels("a", "model").observe(0.02)
    theirs.labels("a", "model").observe(0.02)
    assert _render(ours) == _render(theirs)


def test_counter_renders_what_prometheus_client_renders() -> None:
    ours = _Counter("x_requests", "Doc", ["model", "status"])
    theirs = Counter("x_requests", "Doc", ["model", "status"], registry=None)
    for labels, amount in [(("a", "200"), 1.0), (("b", "404"), 2.5), (("a", "200"), 3.0)]:
        ours.labels(*labels).inc(amount)
        theirs.labels(*labels).inc(amount)
    ours.labels("c", "500")
    theirs.labels("c", "500")
    assert _render(ours) == _render(theirs)


def test_series_are_safe_to_update_from_several_threads() -> None:
    metrics = _metrics(known={"m"})

    def work() -> None:
        for _ in range(2000):
            metrics.observe_item("m", 0.001, 0.002, 0.003, 0.004)
            metrics.count("m", "v2", 200)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _requests(metrics, "m", "v2", "200") == 8000.0
    get = metrics.registry.get_sample_value
    for stage in STAGES[:4]:
        assert get("inferd_stage_seconds_count", {"model": "m", "stage": stage}) == 8000.0


def test_observe_item_records_the_four_item_stages() -> None:
    metrics = _metrics()
    metrics.observe_item("m", 0.00005, 0.0003, 0.02, 7.0)
    get = metrics.registry.get_sample_value
    for stage, le in zip(STAGES[:4], ("0.0001", "0.0005", "0.025", "10.0"), strict=True):
        labels = {"model": "m", "stage": stage}
        assert get("inferd_stage_seconds_count", labels) == 1.0
        assert get("inferd_stage_seconds_bucket", {**labels, "le": le}) == 1.0
    assert get("inferd_stage_seconds_count", {"model": "m", "stage": "total"}) is None


def test_slo_counts_requests_against_the_objective_over_a_rolling_window() -> None:
    now = [1000.0]
    metrics = Metrics(queues=lambda: (), known_models=lambda _: True, clock=lambda: now[0])
    for seconds in (0.010, 0.020, 0.080):
        metrics.within_objective("m", "1", 0.050, seconds)
    text = metrics.render().decode()
    assert 'inferd_slo_objective_seconds{model="m"} 0.05' in text
    assert 'inferd_slo_requests_total{met="true",model="m",version="1"} 2.0' in text
    assert 'inferd_slo_requests_total{met="false",model="m",version="1"} 1.0' in text
    assert 'inferd_slo_attainment{model="m"} 0.6666666666666666' in text
    now[0] += 400  # the window moved past those requests: only the new one counts
    metrics.within_objective("m", "1", 0.050, 0.001)
    assert 'inferd_slo_attainment{model="m"} 1.0' in metrics.render().decode()
