"""A cascade's routing, per item: in process (`Pipeline.run_batch`, what evaluate uses) and
served through each member's Batcher by a DataPlane (notes, metrics, failures, deadlines)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from inferd.api import v1
from inferd.dataplane import DataPlane
from inferd.errors import DeadlineExceededError, ModelError, ModelNotReadyError
from inferd.monitor.metrics import Metrics
from inferd.pipeline import Request
from inferd.repository import ModelRepository
from inferd.stages import Prediction
from inferd.stages.decide import classifier_derived
from tests.support import cascades

INSTANCES = np.random.default_rng(0).normal(size=(24, 4)).round(3).tolist()


def _confidence(prediction: Prediction) -> float:
    return classifier_derived(prediction)["confidence"]


def _loaded(root: Path, trust_code: bool = False) -> ModelRepository:
    repository = ModelRepository(root, trust_code=trust_code)
    repository.load()
    return repository


def _answers(repository: ModelRepository, name: str) -> list[Prediction]:
    model = repository.entry(name).latest
    assert model is not None, repository.entry(name).errors
    outcomes = model.predictive.predict_instances(INSTANCES)
    assert all(isinstance(o, Prediction) for o in outcomes)
    return outcomes  # type: ignore[return-value]


@pytest.mark.parametrize("threshold", [0.0, 0.7, 1.01])
def test_in_process_each_item_is_answered_by_the_member_its_confidence_picks(
    tmp_path: Path, threshold: float
) -> None:
    cascades.repository(tmp_path)
    cascades.cascade(tmp_path, "cascade", "small", "big", f"confidence < {threshold}")
    repository = _loaded(tmp_path)
    small, big, cascade = (_answers(repository, n) for n in ("small", "big", "cascade"))
    sent = [_confidence(p) < threshold for p in small]
    for first, second, answer, on in zip(small, big, cascade, sent, strict=True):
        chosen = second if on else first
        assert answer.fields == chosen.fields
        assert answer.parameters == {"cascade": "then" if on else "first"}
    if threshold == 0.0:
        assert not any(sent)
    if threshold == 1.01:
        assert all(sent)
    if threshold == 0.7:
        assert 0 < sum(sent) < len(sent)  # the instances exercise both members
        assert [a.fields["label"] for a in small] != [a.fields["label"] for a in cascade]


def test_a_cascade_reads_the_first_members_wire_tensors_and_labels(tmp_path: Path) -> None:
    repository = _loaded(cascades.repository(tmp_path))
    cascade = repository.entry("cascade").latest
    small = repository.entry("small").latest
    assert cascade is not None and small is not None
    assert cascade.version == 1
    assert cascade.inputs == small.inputs and cascade.outputs == small.outputs
    assert cascade.spec.task == "classification"
    assert cascade.predictive.labels == cascades.LABELS


def test_in_process_a_failing_second_model_fails_only_the_items_sent_on(
    tmp_path: Path,
) -> None:
    cascades.repository(tmp_path)
    cascades.failing(tmp_path)
    cascades.cascade(tmp_path, "risky", "small", "failing", "confidence < 0.7")
    repository = _loaded(tmp_path, trust_code=True)
    small = _answers(repository, "small")
    model = repository.entry("risky").latest
    assert model is not None
    outcomes = model.predictive.predict_instances(INSTANCES)
    for first, outcome in zip(small, outcomes, strict=True):
        if _confidence(first) < 0.7:
            assert isinstance(outcome, ModelError)
            assert outcome.message.startswith("cascade 'risky': the second model 'failing': ")
            assert "kaboom" in outcome.message
        else:
            assert isinstance(outcome, Prediction) and outcome.fields == first.fields


# --- served --------------------------------------------------------------------------------


def _dataplane(root: Path, trust_code: bool = False) -> DataPlane:
    planes: list[DataPlane] = []
    metrics = Metrics(
        queues=lambda: planes[0].queue_states(), known_models=lambda n: planes[0].known(n)
    )
    repository = ModelRepository(root, trust_code=trust_code, on_batch=metrics.observe_batch)
    repository.load()
    planes.append(DataPlane(repository, metrics))
    return planes[0]


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[DataPlane]:
    cascades.repository(tmp_path)
    cascades.failing(tmp_path)
    cascades.cascade(tmp_path, "risky", "small", "failing", "confidence < 0.7")
    dataplane = _dataplane(tmp_path, trust_code=True)
    await dataplane.repository.start()
    dataplane.started = True
    try:
        yield dataplane
    finally:
        await dataplane.repository.stop()


def _metric(plane: DataPlane, line_start: str) -> float:
    for line in plane.metrics.render().decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_served_items_go_through_each_members_batcher(plane: DataPlane) -> None:
    small = await v1.predict(plane, "small", None, INSTANCES, "r1")
    big = await v1.predict(plane, "big", None, INSTANCES, "r2")
    answered = await v1.predict(plane, "cascade", None, INSTANCES, "r3")
    sent = [s["score"] < 0.7 for s in small]  # small's top score is its confidence
    assert 0 < sum(sent) < len(sent)
    for first, second, answer, on in zip(small, big, answered, sent, strict=True):
        expected = {
            **(second if on else first),
            "parameters": {"cascade": "then" if on else "first"},
        }
        assert answer == expected
    assert plane.ready() and plane.model_ready("cascade")
    prefix = 'inferd_cascade_items_total{member="%s",model="cascade"}'
    assert _metric(plane, prefix % "then") == sum(sent)
    assert _metric(plane, prefix % "first") == len(sent) - sum(sent)
    # the members' batchers ran the cascade's items (their batch counts grew)
    assert _metric(plane, 'inferd_batch_size_count{model="big",version="1"}') >= 2
    assert 'model="cascade",version' not in plane.metrics.render().decode()


async def test_served_a_failing_second_model_fails_the_request_clearly(plane: DataPlane) -> None:
    with pytest.raises(ModelError) as failure:
        await v1.predict(plane, "risky", None, INSTANCES, "req-7")
    message = failure.value.message
    assert message.startswith("cascade 'risky': the second model 'failing': ")
    assert "kaboom" in message and "request id req-7" in message
    confident = [
        x
        for x, s in zip(
            INSTANCES, await v1.predict(plane, "small", None, INSTANCES, "r"), strict=True
        )
        if s["score"] >= 0.7
    ]
    answered = await v1.predict(plane, "risky", None, confident, "req-8")
    assert {a["parameters"]["cascade"] for a in answered} == {"first"}


async def test_served_a_passed_deadline_fails_the_item(plane: DataPlane) -> None:
    request = Request("late", time.monotonic() - 1.0, {})
    with pytest.raises(DeadlineExceededError):
        await plane.predict("cascade", None, INSTANCES[:1], request)


async def test_a_cascade_is_not_ready_while_a_member_is_not_serving(plane: DataPlane) -> None:
    big = plane.repository.entry("big").latest
    assert big is not None
    big.serving = False
    assert not plane.model_ready("cascade") and not plane.ready()
    with pytest.raises(ModelNotReadyError, match="cascade 'cascade' is not ready"):
        await v1.predict(plane, "cascade", None, INSTANCES[:1], "r")
    big.serving = True


async def test_reloading_a_member_relinks_its_cascades(plane: DataPlane) -> None:
    before = plane.repository.entry("cascade").latest
    await plane.repository.reload("big")
    after = plane.repository.entry("cascade").latest
    assert after is not None and after is not before and after.ready
    answered = await v1.predict(plane, "cascade", None, INSTANCES, "r")
    assert len(answered) == len(INSTANCES)
