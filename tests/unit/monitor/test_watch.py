"""The monitor loop: figures as gauges, and alerts that fire once per breach into the same
durable outbox as decide rules' actions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from inferd.monitor.metrics import Metrics
from inferd.monitor.watch import Alerts, Watch, Watched
from inferd.spec import parse_spec
from inferd.store import FeedbackEntry, Store, StoreWriter, default_store_url, open_store
from tests.unit.store.records import prediction

SPEC = parse_spec(
    {
        "name": "m",
        "task": "classification",
        "postprocess": [{"type": "classify", "output": "y"}],
        "prediction_log": {},
        "monitoring": {"min_labels": 10},
        "alerts": [
            {
                "name": "accuracy_drop",
                "when": "accuracy < 0.9",
                "actions": [
                    {"type": "log", "level": "warning"},
                    {"type": "webhook", "url": "http://127.0.0.1:9/alerts"},
                ],
            },
            {"name": "biased", "when": "demographic_parity_difference > 0.1"},
        ],
    }
)


def test_an_alert_fires_once_per_breach_and_again_after_recovering(tmp_path: Path) -> None:
    alerts = Alerts()
    watched = Watched(SPEC, tmp_path, None)
    low = {"accuracy": 0.5, "demographic_parity_difference": None}
    fired = alerts.check(watched, "1", low, now=100.0)
    assert [a.action for a in fired] == ["accuracy_drop.0.log", "accuracy_drop.1.webhook"]
    assert fired[0].event["figures"] == low and fired[0].decision == "accuracy_drop"
    assert fired[1].target["url"] == "http://127.0.0.1:9/alerts"
    assert alerts.check(watched, "1", low, now=160.0) == []  # still the same breach
    assert alerts.check(watched, "1", {"accuracy": 0.95}, now=220.0) == []  # recovered
    again = alerts.check(watched, "1", low, now=280.0)
    assert len(again) == 2 and again[0].idempotency_key != fired[0].idempotency_key
    assert alerts.check(watched, "2", low, now=280.0) != []  # each version on its own


def test_an_unknown_figure_does_not_fire(tmp_path: Path) -> None:
    assert Alerts().check(Watched(SPEC, tmp_path, None), "1", {"accuracy": None}, 1.0) == []


def test_an_alert_rule_must_read_known_figures() -> None:
    from inferd.errors import SpecError

    with pytest.raises(SpecError, match="reads acurracy; the figures are accuracy"):
        parse_spec(
            {
                "name": "m",
                "task": "classification",
                "postprocess": [{"type": "classify", "output": "y"}],
                "alerts": [{"name": "a", "when": "acurracy < 0.9"}],
            }
        )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(default_store_url(tmp_path / "data"))
    yield opened
    opened.close()


async def test_a_pass_sets_the_gauges_and_puts_alerts_in_the_outbox(
    store: Store, tmp_path: Path
) -> None:
    now = 10_000.0
    rows = [
        prediction(f"r{i}", model="m", created_at=now - 60, prediction={"label": "cat"})
        for i in range(20)
    ]
    store.save(rows, [])
    store.attach_feedback(
        [FeedbackEntry(f"r{i}", 0, "cat" if i < 10 else "dog") for i in range(20)], at=now
    )
    writer = StoreWriter(store)
    writer.start()
    metrics = Metrics(queues=lambda: (), known_models=lambda _: True)
    watch = Watch(
        lambda: [Watched(SPEC, tmp_path, None)], store, writer, metrics, clock=lambda: now
    )
    try:
        fired = await watch.check()
        assert [a.action for a in fired] == ["accuracy_drop.0.log", "accuracy_drop.1.webhook"]
        assert sorted(a.action for a in store.list_actions(model="m")) == [
            "accuracy_drop.0.log",
            "accuracy_drop.1.webhook",
        ]
        text = metrics.render().decode()
        assert 'inferd_quality{metric="accuracy",model="m",version="1"} 0.5' in text
        assert 'inferd_quality_labels{model="m",version="1"} 20.0' in text
        assert await watch.check() == []  # the same breach: nothing new
        assert len(store.list_actions(model="m")) == 2
    finally:
        writer.close()
