"""The repository's seam for running versions elsewhere (`--engine ray`): a runner factory
gives each version its runner, and what it answers reaches the client's Served."""

from __future__ import annotations

from pathlib import Path

from inferd.pipeline import ItemResult, Request
from inferd.repository import ModelRepository, ModelVersion, Runner
from inferd.stages import Item
from tests.support import onnx_models


class _Elsewhere:
    """A runner that runs the version's pipeline itself and names itself on each answer."""

    def __init__(self, model: ModelVersion) -> None:
        self.model = model
        self.hung = False
        self.queue_depth = 0
        self.running = 0
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    def admit(self, deadline: float | None = None) -> float:
        return 0.0

    async def submit(self, item: Item, deadline: float | None = None) -> tuple[ItemResult, float]:
        [result] = self.model.predictive.run_batch([item])
        assert isinstance(result, ItemResult)
        result.served_by = "elsewhere-1"
        return result, 0.0

    async def stop(self, drain: bool = True) -> None:
        self.stopped = True


async def test_versions_run_on_the_runner_the_factory_gives(tmp_path: Path) -> None:
    onnx_models.scaled(tmp_path / "m" / "1" / "model.onnx", 2.0)
    made: list[tuple[_Elsewhere, Path]] = []

    def factory(model: ModelVersion, model_dir: Path) -> Runner:
        runner = _Elsewhere(model)
        made.append((runner, model_dir))
        return runner

    repository = ModelRepository(tmp_path, runners=factory)
    repository.load()
    await repository.start()
    model = repository.get("m")
    [(runner, model_dir)] = made
    assert model.batcher is runner and runner.started and model_dir == tmp_path / "m"
    item = model.predictive.item_from_instance([3.0])
    [answer] = await model.predictive.process([item], model.submit, Request("r"))
    assert answer.prediction.fields["y"] == [6.0]
    assert answer.result.served_by == "elsewhere-1"
    await repository.stop()
    assert runner.stopped and model.batcher is None


async def test_a_factory_may_leave_a_version_here(tmp_path: Path) -> None:
    onnx_models.scaled(tmp_path / "m" / "1" / "model.onnx", 2.0)
    repository = ModelRepository(tmp_path, runners=lambda model, model_dir: None)
    repository.load()
    await repository.start()
    model = repository.get("m")
    [answer] = await model.predictive.process(
        [model.predictive.item_from_instance([1.0])], model.submit, Request("r")
    )
    assert answer.result.served_by is None  # a local Batcher ran it
    await repository.stop()
