"""Stage 6 through the DataPlane: decisions in the answer, actions and log records in a real
store (SQLite) before the answer, feedback attached by request id."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferd.api import v1
from inferd.dataplane import DataPlane
from inferd.errors import BadRequestError, NotFoundError
from inferd.monitor.costs import Accounting, Pricing
from inferd.monitor.energy import CpuPower
from inferd.monitor.metrics import Metrics
from inferd.monitor.recording import Recorder, idempotency_key
from inferd.repository import ModelRepository
from inferd.store import FeedbackEntry, Store, StoreWriter, default_store_url, open_store
from tests.support import onnx_models

FEATURES = ["f0", "f1", "f2"]
HOOK = "http://127.0.0.1:9/never-called"  # no dispatcher runs in these tests


def _write_house(root: Path, **extra: Any) -> None:
    """A linear regressor of three named features (price = the model's output)."""
    onnx_models.linear_regressor(root / "house" / "1" / "model.onnx", features=3)
    spec = {
        "task": "regression",
        "inputs": [{"name": f, "datatype": "FP64", "shape": [1]} for f in FEATURES],
        "preprocess": [{"type": "tabular", "features": FEATURES}],
        "postprocess": [{"type": "regress"}],
        "decide": [
            {
                "decision": "expensive",
                "when": "value > parameters.budget",
                "actions": [{"type": "webhook", "url": HOOK}, {"type": "log"}],
            },
            {"decision": "big_first_feature", "when": "inputs.f0 > 5"},
        ],
        "prediction_log": {"inputs": ["f0"]},
        **extra,
    }
    (root / "house" / "model.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")


@contextlib.asynccontextmanager
async def _serving(
    tmp_path: Path, accounting: Accounting | None = None
) -> AsyncIterator[tuple[DataPlane, Store]]:
    """The house model behind a DataPlane with a real SQLite store (and accounting if given)."""
    _write_house(tmp_path / "repo")
    repository = ModelRepository(tmp_path / "repo")
    repository.load()
    await repository.start()
    store = open_store(default_store_url(tmp_path / "data"))
    writer = StoreWriter(store, on_saved=None)
    writer.start()
    metrics = Metrics(queues=lambda: (), known_models=lambda _: True, currency="EUR")
    recorder = Recorder(writer, accounting=accounting)
    dataplane = DataPlane(
        repository, metrics, store=store, recorder=recorder, accounting=accounting
    )
    try:
        yield dataplane, store
    finally:
        await repository.stop()
        writer.close()
        store.close()


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[tuple[DataPlane, Store]]:
    async with _serving(tmp_path) as serving:
        yield serving


async def _price(dataplane: DataPlane, features: list[float]) -> float:
    instance = dict(zip(FEATURES, features, strict=True))
    [answer] = await v1.predict(dataplane, "house", None, [instance], "probe", None, {})
    return float(answer["value"])


async def test_decisions_answer_and_actions_are_in_the_outbox_before_the_answer(
    plane: tuple[DataPlane, Store],
) -> None:
    dataplane, store = plane
    cheap, dear = [1.0, 1.0, 1.0], [9.0, 9.0, 9.0]
    low, high = await _price(dataplane, cheap), await _price(dataplane, dear)
    assert low != high
    if low > high:  # the rule is about the price, whichever features make it
        cheap, dear, low, high = dear, cheap, high, low
    instances = [dict(zip(FEATURES, x, strict=True)) for x in (cheap, dear)]
    budget = (low + high) / 2
    answers = await v1.predict(
        dataplane, "house", None, instances, "req-1", None, {"budget": budget}
    )
    big = ["big_first_feature"]
    assert [a["decisions"] for a in answers] == [
        big if cheap[0] > 5 else [],
        ["expensive", *(big if dear[0] > 5 else [])],
    ]

    actions = store.list_actions(model="house")
    assert sorted(a.action for a in actions) == ["expensive.0.webhook", "expensive.1.log"]
    webhook = next(a for a in actions if a.kind == "webhook")
    assert webhook.state == "pending" and webhook.item == 1 and webhook.request_id == "req-1"
    assert webhook.idempotency_key == idempotency_key("house", "req-1", 1, "expensive", 0)
    assert webhook.target["url"] == HOOK and webhook.target["max_attempts"] == 10
    event = webhook.event
    assert event["decision"] == "expensive" and event["model"] == "house"
    assert event["version"] == "1" and event["request_id"] == "req-1"
    assert event["prediction"] == {"value": answers[1]["value"]}

    logged = store.find_predictions(["req-1"])["req-1"]
    assert sorted(p.item for p in logged) == [0, 1]


async def test_a_repeated_request_id_does_not_enqueue_its_actions_twice(
    plane: tuple[DataPlane, Store],
) -> None:
    dataplane, store = plane
    instance = dict(zip(FEATURES, [9.0, 9.0, 9.0], strict=True))
    for _ in range(2):
        await v1.predict(dataplane, "house", None, [instance], "same-id", None, {"budget": -1e9})
    assert len(store.list_actions(model="house")) == 2  # webhook + log, once
    assert len(store.find_predictions(["same-id"])["same-id"]) == 2  # both predictions logged


async def test_feedback_attaches_truth_and_refuses_unknown_ids(
    plane: tuple[DataPlane, Store],
) -> None:
    dataplane, store = plane
    instance = dict(zip(FEATURES, [1.0, 2.0, 3.0], strict=True))
    await v1.predict(dataplane, "house", None, [instance], "fb-1", None, {"budget": 1e9})
    entries = [FeedbackEntry("fb-1", 0, 12.5), FeedbackEntry("nope", 0, 1.0)]
    with pytest.raises(NotFoundError, match=r"feedback\[1\]: request id 'nope' item 0"):
        await dataplane.feedback(entries)
    assert store.logged("house")[0].feedback is None  # all or nothing
    assert await dataplane.feedback(entries[:1]) == {"recorded": 1}
    assert store.logged("house")[0].feedback == 12.5
    with pytest.raises(BadRequestError, match=r"feedback\[0\]: the truth for 'house' is a number"):
        await dataplane.feedback([FeedbackEntry("fb-1", 0, "expensive"), entries[1]])


async def test_a_bad_parameter_is_a_400_naming_the_rule(plane: tuple[DataPlane, Store]) -> None:
    dataplane, store = plane
    instance = dict(zip(FEATURES, [1.0, 2.0, 3.0], strict=True))
    with pytest.raises(BadRequestError, match="decision rule 'expensive'"):
        await v1.predict(dataplane, "house", None, [instance], "bad", None, {"budget": "lots"})
    assert store.list_actions() == []


async def test_each_logged_prediction_keeps_its_stages_cpu_energy_and_cost(
    tmp_path: Path,
) -> None:
    """With accounting on, the log row and the metrics carry the prediction's costs."""
    accounting = Accounting(
        Pricing(price_per_hour=36.0),
        cpu_power=CpuPower(watts_per_core=12.0, root=tmp_path / "no-powercap"),
        cores=2,
        find_gpu=False,
    )
    async with _serving(tmp_path, accounting) as (dataplane, store):
        instances = [dict(zip(FEATURES, [float(i), 1.0, 2.0], strict=True)) for i in range(8)]
        await v1.predict(dataplane, "house", None, instances, "costly", None, {"budget": 1e9})
        await dataplane.report("house")  # waits for the log rows, written behind the answers
        rows = store.logged("house")
        assert len(rows) == 8
        for row in rows:
            assert row.stage_ms is not None
            assert set(row.stage_ms) == {"queue", "preprocess", "model", "postprocess"}
            assert row.cpu_ms is not None and row.cpu_ms > 0
            assert row.energy_method == "estimate"
            assert row.energy_j == pytest.approx(row.cpu_ms / 1000 * 12.0)
            assert row.cost == pytest.approx(row.cpu_ms / 1000 * 36.0 / 2 / 3600)
        metrics = dataplane.metrics
        text = metrics.render().decode()
        assert 'inferd_cpu_seconds_total{model="house",version="1"}' in text
        assert 'inferd_energy_joules_total{method="estimate",model="house",version="1"}' in text
        assert 'inferd_cost_total{currency="EUR",model="house",version="1"}' in text
        spent = metrics.costs.spent[("house", "1")]
        assert spent.predictions == 8
        assert spent.cpu_s == pytest.approx(sum(r.cpu_ms or 0 for r in rows) / 1000)
