"""The model repository: discovery, versions, failures recorded per model, serving and reload."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from inferd.errors import BadRequestError, ModelNotReadyError, NotFoundError, SpecError
from inferd.pipeline import ItemResult
from inferd.repository import ModelRepository, discover, load_model
from tests.support import onnx_models


def _scaled_model(
    root: Path, name: str, factors: dict[int, float], yaml: str | None = None
) -> Path:
    """A model folder whose version N multiplies its input by factors[N]."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for version, factor in factors.items():
        onnx_models.scaled(folder / str(version) / "model.onnx", factor)
    if yaml is not None:
        (folder / "model.yaml").write_text(yaml, encoding="utf-8")
    return folder


async def _predict(repository: ModelRepository, name: str, x: list[float]) -> list[float]:
    model = repository.get(name)
    assert model.batcher is not None
    result, _ = await model.batcher.submit(model.pipeline.item_from_instance(x))
    assert isinstance(result, ItemResult)
    return result.prediction.fields["y"]


# --- discovery --------------------------------------------------------------------------------


def test_discover_finds_model_folders_only(tmp_path: Path) -> None:
    _scaled_model(tmp_path, "b_versions", {1: 2.0})
    (tmp_path / "a_yaml_only").mkdir()
    (tmp_path / "a_yaml_only" / "model.yaml").write_text("task: tensor\n", encoding="utf-8")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a model", encoding="utf-8")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "draft").mkdir()  # a non-numeric subfolder is no version
    _scaled_model(tmp_path, ".hidden", {1: 2.0})
    (tmp_path / "file.onnx").write_bytes(b"")
    assert [p.name for p in discover(tmp_path)] == ["a_yaml_only", "b_versions"]


def test_discover_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is not a folder"):
        discover(tmp_path / "missing")


# --- versions -------------------------------------------------------------------------------


def test_highest_version_is_served_by_default(tmp_path: Path) -> None:
    entry = load_model(_scaled_model(tmp_path, "m", {1: 2.0, 3: 3.0, 2: 4.0}))
    assert entry.errors == []
    assert sorted(entry.versions) == [3]
    assert entry.latest is not None and entry.latest.version == 3


def test_versions_are_numbers_not_strings(tmp_path: Path) -> None:
    entry = load_model(_scaled_model(tmp_path, "m", {2: 2.0, 10: 3.0}))
    assert sorted(entry.versions) == [10]


def test_versions_all(tmp_path: Path) -> None:
    entry = load_model(_scaled_model(tmp_path, "m", {1: 2.0, 2: 3.0, 3: 4.0}, "versions: all\n"))
    assert sorted(entry.versions) == [1, 2, 3]
    assert entry.latest is not None and entry.latest.version == 3


def test_versions_pinned(tmp_path: Path) -> None:
    entry = load_model(_scaled_model(tmp_path, "m", {1: 2.0, 2: 3.0, 3: 4.0}, "versions: [2, 1]\n"))
    assert sorted(entry.versions) == [1, 2]
    assert entry.latest is not None and entry.latest.version == 2


def test_versions_pinned_but_missing(tmp_path: Path) -> None:
    entry = load_model(_scaled_model(tmp_path, "m", {1: 2.0}, "versions: [1, 5]\n"))
    assert entry.versions == {}
    assert entry.errors == ["versions [5] are pinned in model.yaml but have no folder"]


def test_no_version_folders(tmp_path: Path) -> None:
    entry = load_model(_scaled_model(tmp_path, "m", {}, "task: tensor\n"))
    assert entry.versions == {}
    assert len(entry.errors) == 1
    assert "has no version folders; put the artifact in" in entry.errors[0]


# --- models without model.yaml ------------------------------------------------------------------


def test_bare_onnx_with_dynamic_batch_is_a_batched_tensor_model(tmp_path: Path) -> None:
    onnx_models.two_in_two_out(tmp_path / "pair" / "1" / "model.onnx")
    entry = load_model(tmp_path / "pair")
    assert entry.errors == []
    assert entry.spec is not None
    assert entry.spec.name == "pair"
    assert entry.spec.task == "tensor"
    assert entry.spec.batched is True
    assert entry.latest is not None and entry.latest.pipeline.batched is True


def test_bare_onnx_with_fixed_shapes_is_unbatched(tmp_path: Path) -> None:
    onnx_models.fixed_shape(tmp_path / "fixed" / "1" / "model.onnx")
    entry = load_model(tmp_path / "fixed")
    assert entry.spec is not None
    assert entry.spec.batched is False
    assert entry.spec.max_batch_size == 0
    assert entry.latest is not None
    assert [t.shape for t in entry.latest.pipeline.inputs] == [[2, 3]]


# --- failures -------------------------------------------------------------------------------


def test_name_mismatch(tmp_path: Path) -> None:
    entry = load_model(_scaled_model(tmp_path, "m", {1: 2.0}, "name: other\n"))
    assert entry.versions == {}
    assert entry.errors == [
        "model.yaml names the model 'other' but its folder is 'm'; make them the same"
    ]


def test_invalid_yaml_is_recorded(tmp_path: Path) -> None:
    entry = load_model(_scaled_model(tmp_path, "m", {1: 2.0}, "batching: {max_batch: 3}\n"))
    assert len(entry.errors) == 1
    assert "batching.max_batch: unknown key" in entry.errors[0]


def test_missing_labels_file_is_recorded(tmp_path: Path) -> None:
    entry = load_model(_scaled_model(tmp_path, "m", {1: 2.0}, "labels: labels.txt\n"))
    assert "labels file" in entry.errors[0] and "does not exist" in entry.errors[0]


def test_broken_model_is_recorded_while_others_load(tmp_path: Path) -> None:
    _scaled_model(tmp_path, "good", {1: 2.0})
    broken = tmp_path / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "model.onnx").write_bytes(b"garbage, not an onnx graph")
    repository = ModelRepository(tmp_path)
    repository.load()
    good, bad = repository.entry("good"), repository.entry("broken")
    assert [e.name for e in repository.entries()] == ["broken", "good"]
    assert good.errors == [] and sorted(good.versions) == [1]
    assert bad.versions == {}
    assert len(bad.errors) == 1
    assert bad.errors[0].startswith("version 1: ")
    assert "could not be loaded by onnxruntime" in bad.errors[0]


def test_one_broken_version_does_not_hide_the_others(tmp_path: Path) -> None:
    folder = _scaled_model(tmp_path, "m", {1: 2.0}, "versions: all\n")
    (folder / "2").mkdir()
    entry = load_model(folder)
    assert sorted(entry.versions) == [1]
    assert len(entry.errors) == 1 and entry.errors[0].startswith("version 2: ")


# --- get() ----------------------------------------------------------------------------------


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    _scaled_model(tmp_path, "alpha", {1: 2.0, 2: 3.0}, "versions: all\n")
    _scaled_model(tmp_path, "beta", {1: 5.0})
    broken = tmp_path / "gamma" / "1"
    broken.mkdir(parents=True)
    (broken / "model.onnx").write_bytes(b"junk")
    repo = ModelRepository(tmp_path)
    repo.load()
    return repo


def test_get_unknown_model_lists_known_ones(repository: ModelRepository) -> None:
    with pytest.raises(NotFoundError) as caught:
        repository.get("delta")
    assert caught.value.message == "unknown model 'delta'; this server has: alpha, beta, gamma"
    assert caught.value.status_code == 404


def test_get_unknown_version(repository: ModelRepository) -> None:
    with pytest.raises(NotFoundError) as caught:
        repository.get("alpha", "7")
    assert caught.value.message == "model 'alpha' has no version 7 loaded; loaded versions: 1, 2"


def test_get_non_numeric_version(repository: ModelRepository) -> None:
    with pytest.raises(NotFoundError, match="model version must be a number; got 'latest'"):
        repository.get("alpha", "latest")


def test_get_before_start_is_not_ready(repository: ModelRepository) -> None:
    with pytest.raises(ModelNotReadyError, match="model 'beta' version 1 is not serving yet"):
        repository.get("beta")


def test_get_broken_model_says_why(repository: ModelRepository) -> None:
    with pytest.raises(ModelNotReadyError) as caught:
        repository.get("gamma")
    assert caught.value.message.startswith("model 'gamma' is not ready: version 1: ")
    assert caught.value.status_code == 503


def test_load_one_unknown_folder(repository: ModelRepository) -> None:
    with pytest.raises(NotFoundError, match="unknown model 'nope'"):
        repository.load_one("nope")


# --- serving --------------------------------------------------------------------------------


async def test_start_serves_every_version_and_stop_ends_it(tmp_path: Path) -> None:
    batches: list[tuple[str, str, int]] = []
    _scaled_model(tmp_path, "alpha", {1: 2.0, 2: 3.0}, "versions: all\n")
    repo = ModelRepository(tmp_path, on_batch=lambda *args: batches.append(args))
    repo.load()
    await repo.start()
    try:
        assert await _predict(repo, "alpha", [1.0, 2.0]) == [3.0, 6.0]
        v1 = repo.get("alpha", "1")
        assert v1.ready and v1.batcher is not None
        result, _ = await v1.batcher.submit(v1.pipeline.item_from_instance([4.0]))
        assert isinstance(result, ItemResult)
        assert result.prediction.fields["y"] == [8.0]
        assert sorted(batches) == [("alpha", "1", 1), ("alpha", "2", 1)]
    finally:
        await repo.stop()
    with pytest.raises(ModelNotReadyError):
        repo.get("alpha")


async def test_concurrent_requests_are_all_answered(tmp_path: Path) -> None:
    sizes: list[int] = []
    _scaled_model(tmp_path, "m", {1: 2.0})
    repo = ModelRepository(tmp_path, on_batch=lambda _m, _v, size: sizes.append(size))
    repo.load()
    await repo.start()
    try:
        answers = await asyncio.gather(*(_predict(repo, "m", [float(i)]) for i in range(20)))
    finally:
        await repo.stop()
    assert answers == [[2.0 * i] for i in range(20)]
    assert sum(sizes) == 20


async def test_reload_swaps_in_a_new_version_while_serving(tmp_path: Path) -> None:
    folder = _scaled_model(tmp_path, "m", {1: 2.0})
    repo = ModelRepository(tmp_path)
    repo.load()
    await repo.start()
    try:
        old = repo.get("m")
        assert old.batcher is not None
        # queued on version 1 before the reload; they must be answered by version 1
        in_flight = [
            asyncio.ensure_future(old.batcher.submit(old.pipeline.item_from_instance([float(i)])))
            for i in range(5)
        ]
        onnx_models.scaled(folder / "2" / "model.onnx", 10.0)
        fresh = await repo.reload("m")
        assert sorted(fresh.versions) == [2]
        answered = await asyncio.gather(*in_flight)
        assert [r.prediction.fields["y"] for r, _ in answered] == [[2.0 * i] for i in range(5)]
        assert repo.get("m").version == 2
        assert await _predict(repo, "m", [1.5]) == [15.0]
        assert old.batcher is None  # the old version was stopped
        with pytest.raises(NotFoundError, match="loaded versions: 2"):
            repo.get("m", "1")
    finally:
        await repo.stop()


async def test_reload_unknown_model(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    repo.load()
    with pytest.raises(NotFoundError, match="unknown model 'ghost'; this server has: none"):
        await repo.reload("ghost")


# --- generation models -----------------------------------------------------------------------

GENERATION_SPEC = """
name: tiny
task: generation
backend: torch
generation: {max_context: 48, max_sequences: 2}
"""


def _generation_model(root: Path) -> Path:
    from tests.support.tiny_lm import gpt2_folder

    folder = root / "tiny"
    gpt2_folder(folder / "1", positions=64)
    (folder / "model.yaml").write_text(GENERATION_SPEC)
    return folder


def test_a_generation_model_loads_an_engine_not_a_pipeline(tmp_path: Path) -> None:
    entry = load_model(_generation_model(tmp_path))
    assert entry.errors == []
    model = entry.versions[1]
    assert model.pipeline is None and model.engine is not None
    assert model.engine.limits.max_context == 48  # model.yaml's, below the checkpoint's 64
    assert [(t.name, t.datatype) for t in model.inputs] == [("text_input", "BYTES")]
    with pytest.raises(BadRequestError, match="generates text: send it prompts"):
        model.predictive  # noqa: B018 - the property is what is tested
    model.close()


async def test_a_generation_model_serves_once_started(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)
    _generation_model(tmp_path)
    repository.load()
    await repository.start()
    try:
        model = repository.get("tiny")
        assert model.engine is not None
        prompt = model.engine.encode("def f():")
        from inferd.generate.sampling import SamplingParams

        deltas = [
            d
            async for d in model.engine.stream(
                prompt, SamplingParams(max_tokens=3, ignore_eos=True)
            )
        ]
        assert deltas[-1].finish_reason == "length" and deltas[-1].completion_tokens == 3
    finally:
        await repository.stop()
    assert not repository.entry("tiny").versions[1].ready
