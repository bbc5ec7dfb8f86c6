"""`ModelRepository`: a folder of models and their versions, loaded and served.

    model_repository/
      digits/
        model.yaml        # optional: without it the ONNX graph describes the model
        labels.txt
        1/model.onnx      # versions are numbered folders; the highest is served unless pinned

A model that fails to load is recorded with the reason (shown by `inferd models`,
`inferd validate` and the readiness endpoints) and never stops the others from serving.

A cascade (model.yaml `cascade:`) is a folder without versions: it is linked to its members
once they are loaded, and serves as one `CascadeVersion` (version 1), ready while both are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from inferd.backends import Backend, load_backend
from inferd.batching import Batcher
from inferd.errors import (
    BadRequestError,
    InferdError,
    ModelNotReadyError,
    NotFoundError,
    SpecError,
)
from inferd.hardware import core_share
from inferd.pipeline import Cascade, ItemResult, Pipeline, Submit, cascade_pipeline
from inferd.spec import (
    BatchingSpec,
    Environment,
    GenerationSpec,
    ModelSpec,
    TensorSpec,
    load_labels,
    load_spec,
)
from inferd.stages import Item

if TYPE_CHECKING:  # torch is an optional extra, imported only to serve a generation model
    from inferd.generate.engine import Engine

logger = logging.getLogger("inferd.repository")

BatchObserver = Callable[[str, str, int], None]
"""Called with (model, version, batch size) for every batch a model runs."""


_TEXT_INPUT = TensorSpec(name="text_input", datatype="BYTES", shape=[1])
_TEXT_OUTPUT = TensorSpec(name="text_output", datatype="BYTES", shape=[1])
"""A generation model's tensors, named as in the generate extension of the V2 protocol."""


class Runner(Protocol):
    """Runs one version's stages 2-5 for the items submitted on the event loop: its `Batcher`
    in this process, or a deployment elsewhere with the same face (`deploy/ray.py`)."""

    hung: bool
    """A batch hung: it takes nothing more, and the version is being restarted."""

    @property
    def queue_depth(self) -> int: ...

    @property
    def running(self) -> int: ...

    async def start(self) -> None: ...

    def admit(self, deadline: float | None = None) -> float: ...

    async def submit(
        self, item: Item, deadline: float | None = None
    ) -> tuple[ItemResult, float]: ...

    async def stop(self, drain: bool = True) -> None: ...


RunnerFactory = Callable[["ModelVersion", Path], "Runner | None"]
"""Makes a version's runner outside this process, given the version and its model folder
(`inferd serve --engine ray`); None runs it here, on a Batcher."""


@dataclass
class ModelVersion:
    """One loaded version: a predictive model's pipeline (and, while served, its batcher),
    or a generation model's engine."""

    name: str
    version: int
    spec: ModelSpec
    pipeline: Pipeline | None = None
    batcher: Runner | None = None
    """What runs its stages 2-5 while it serves: a Batcher, or a remote deployment."""
    engine: Engine | None = None
    serving: bool = False

    @property
    def ready(self) -> bool:
        return self.serving

    def admit(self, deadline: float | None) -> None:
        """Refuse now (429/503) a request its batcher could not serve in time."""
        if self.batcher is not None:
            self.batcher.admit(deadline)

    @property
    def inputs(self) -> list[TensorSpec]:
        """The wire inputs (per item when batched); a generation model takes text."""
        return self.pipeline.inputs if self.pipeline is not None else [_TEXT_INPUT]

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.pipeline.outputs if self.pipeline is not None else [_TEXT_OUTPUT]

    @property
    def batched(self) -> bool:
        return self.pipeline.batched if self.pipeline is not None else True

    def close(self) -> None:
        """Free the runtime (the model must not be serving)."""
        if self.pipeline is not None:
            self.pipeline.backend.close()
        if self.engine is not None:
            self.engine.close()

    @property
    def predictive(self) -> Pipeline:
        """The pipeline, or a clear 400 for a generation model asked for a prediction."""
        if self.pipeline is None:
            raise BadRequestError(
                f"model {self.name!r} generates text: send it prompts (OpenAI completions or "
                "chat completions, or the V2 generate extension) instead"
            )
        return self.pipeline

    @property
    def submit(self) -> Submit:
        """Queues one item for stages 2-5: the version's Batcher (503 once it has stopped,
        e.g. between routing and now in a reload or shutdown)."""
        batcher = self.batcher
        if batcher is None:
            raise ModelNotReadyError(f"model {self.name!r} version {self.version} is not serving")
        return batcher.submit


class CascadeVersion(ModelVersion):
    """A cascade model's one version: its items go to its first member's serving version and,
    when unsure, on to its second's (each through its own Batcher); ready while both are."""

    def __init__(
        self,
        spec: ModelSpec,
        pipeline: Pipeline,
        cascade: Cascade,
        first: ModelVersion,
        then: ModelVersion,
    ) -> None:
        super().__init__(spec.name, 1, spec, pipeline)
        self.cascade = cascade
        self.first = first
        self.then = then

    @property
    def ready(self) -> bool:
        return self.serving and self.first.ready and self.then.ready

    def admit(self, deadline: float | None) -> None:
        self.first.admit(deadline)  # every item goes through the first member

    @property
    def submit(self) -> Submit:
        first, then, route = self.first.submit, self.then, self.cascade.route
        return lambda item, deadline: route(item, deadline, first, lambda: then.submit)

    def close(self) -> None:
        """Nothing of its own to free: its members' runtimes are theirs."""


@dataclass
class ModelEntry:
    """A model folder: its spec, its loaded versions, and why anything failed."""

    name: str
    path: Path
    spec: ModelSpec | None = None
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def latest(self) -> ModelVersion | None:
        return self.versions[max(self.versions)] if self.versions else None


def version_numbers(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def discover(root: Path) -> list[Path]:
    """Model folders: subfolders holding a model.yaml or at least one numbered version."""
    if not root.is_dir():
        raise SpecError(f"model repository {root} is not a folder")
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and ((p / "model.yaml").exists() or version_numbers(p))
    )


def _graph_spec(name: str, backend: Backend) -> ModelSpec:
    """A spec for a bare ONNX file: batched when every tensor has a dynamic first dimension."""
    tensors = [*backend.inputs, *backend.outputs]
    batched = bool(tensors) and all(t.shape and t.shape[0] == -1 for t in tensors)
    return ModelSpec(
        name=name,
        task="tensor",
        batching=BatchingSpec() if batched else BatchingSpec(max_batch_size=0),
    )


def selected_versions(spec: ModelSpec | None, available: list[int]) -> list[int]:
    """The versions model.yaml serves of those `available` (latest, all, or the listed ones)."""
    policy = spec.versions if spec is not None else "latest"
    if policy == "latest":
        return available[-1:]
    if policy == "all":
        return available
    missing = [v for v in policy if v not in available]
    if missing:
        raise SpecError(f"versions {missing} are pinned in model.yaml but have no folder")
    return sorted(policy)


def load_model(
    model_dir: Path,
    trust_code: bool = False,
    only: Sequence[int] | None = None,
    allow_env: Collection[str] = (),
) -> ModelEntry:
    """Load every served version of one model folder (or the versions `only` names, served or
    not: the optimize tools compare variants); failures are recorded, not raised."""
    entry = ModelEntry(name=model_dir.name, path=model_dir)
    try:
        spec = load_spec(model_dir, Environment.for_process(trust_code, allow_env))
        entry.spec = spec
        if spec is not None and spec.name != model_dir.name:
            raise SpecError(
                f"model.yaml names the model {spec.name!r} but its folder is "
                f"{model_dir.name!r}; make them the same"
            )
        labels = load_labels(spec, model_dir) if spec is not None else None
        available = version_numbers(model_dir)
        if spec is not None and spec.cascade is not None:
            if available:
                raise SpecError(
                    f"{model_dir} is a cascade (model.yaml `cascade:`) but has version "
                    f"folders {available}; its members' versions serve it, remove them"
                )
            return entry  # linked to its members by the repository (`link_cascade`)
        if not available:
            raise SpecError(
                f"{model_dir} has no version folders; put the artifact in {model_dir}/1/"
            )
        versions = selected_versions(spec, available) if only is None else list(only)
        missing = [v for v in versions if v not in available]
        if missing:
            raise NotFoundError(
                f"model {model_dir.name!r} has no version {missing[0]}; "
                f"its versions are {', '.join(map(str, available))}"
            )
    except InferdError as error:
        entry.errors.append(error.message)
        return entry
    for number in versions:
        version_dir = model_dir / str(number)
        try:
            version_spec = spec
            if version_spec is None:
                provisional = ModelSpec(name=model_dir.name)
                backend = load_backend(provisional, version_dir, trust_code)
                version_spec = _graph_spec(model_dir.name, backend)
                entry.spec = version_spec
            elif version_spec.task == "generation":
                engine = load_engine(version_spec, version_dir)
                entry.versions[number] = ModelVersion(
                    model_dir.name, number, version_spec, engine=engine
                )
                continue
            else:
                backend = load_backend(version_spec, version_dir, trust_code)
            pipeline = Pipeline(version_spec, backend, labels, model_dir, trust_code, number)
        except InferdError as error:
            entry.errors.append(f"version {number}: {error.message}")
            continue
        except Exception as error:  # a broken artifact must not take the server down
            logger.exception("loading %s version %d failed", model_dir.name, number)
            entry.errors.append(f"version {number}: {type(error).__name__}: {error}")
            continue
        entry.versions[number] = ModelVersion(model_dir.name, number, version_spec, pipeline)
    return entry


def link_cascade(entry: ModelEntry, members: Callable[[str], ModelEntry | None]) -> None:
    """Give a cascade's entry its one version over its members' latest loaded versions
    (`members` finds a loaded entry by name); failures are recorded on the entry."""
    spec = entry.spec
    assert spec is not None and spec.cascade is not None
    entry.versions.clear()
    try:
        first, then = (
            _member(spec.name, role, name, members(name))
            for role, name in (("first", spec.cascade.first), ("then", spec.cascade.then))
        )
        pipeline, cascade = cascade_pipeline(
            spec, first.predictive, then.predictive, entry.path, False
        )
        labels = load_labels(spec, entry.path)
        if labels is not None and labels != pipeline.labels:
            raise SpecError(
                f"cascade {spec.name!r}: its labels differ from its members'; leave `labels:` "
                "out of its model.yaml, or make them the members' labels"
            )
    except InferdError as error:
        entry.errors.append(error.message)
        return
    entry.versions[1] = CascadeVersion(pipeline.spec, pipeline, cascade, first, then)


def _member(cascade: str, role: str, name: str, entry: ModelEntry | None) -> ModelVersion:
    where = f"cascade {cascade!r}: its {role} model {name!r}"
    if entry is None:
        raise SpecError(f"{where} is not a model of this repository; check the name")
    if entry.spec is not None and entry.spec.cascade is not None:
        raise SpecError(f"{where} is itself a cascade; name plain models as members")
    if entry.latest is None:
        reason = "; ".join(entry.errors) or "it has no loaded version"
        raise SpecError(f"{where} did not load: {reason}")
    if entry.latest.pipeline is None:
        raise SpecError(f"{where} generates text; a cascade's members must predict")
    return entry.latest


def load_engine(spec: ModelSpec, version_dir: Path) -> Engine:
    """A generation engine over the Hugging Face folder of one version (not yet started)."""
    from inferd.generate.engine import Engine
    from inferd.generate.model import read_shape
    from inferd.generate.scheduler import Limits

    options = spec.generation or GenerationSpec()
    context = min(options.max_context or 1 << 30, read_shape(version_dir).max_positions)
    limits = Limits(
        max_sequences=options.max_sequences,
        max_tokens_in_flight=options.max_tokens_in_flight or options.max_sequences * context,
        max_waiting=options.max_waiting,
        max_context=context,
        max_prefill_tokens=options.max_prefill_tokens,
    )
    return Engine(version_dir, limits, threads=spec.runtime.threads or core_share())


def make_batcher(
    model: ModelVersion,
    on_batch: Callable[[int], None] | None = None,
    on_hung: Callable[[], None] | None = None,
) -> Batcher[Item, ItemResult]:
    """The Batcher that runs a version's stages 2-5 as its model.yaml says (in this process,
    or in a Ray Serve replica)."""
    spec = model.spec
    return Batcher(
        model.predictive.run_batch,
        max_batch_size=spec.max_batch_size,
        max_delay_ms=spec.batching.max_delay_ms,
        max_queue=spec.batching.max_queue,
        workers=spec.runtime.instances,
        on_batch=on_batch,
        name=f"{model.name}:{model.version}",
        weigh=Item.wire_bytes,
        batch_timeout_s=spec.runtime.batch_timeout_s,
        on_hung=on_hung,
    )


class ModelRepository:
    """All models of a repository folder; serves them through one Batcher per version."""

    def __init__(
        self,
        root: Path,
        trust_code: bool = False,
        on_batch: BatchObserver | None = None,
        allow_env: Collection[str] = (),
        runners: RunnerFactory | None = None,
    ) -> None:
        self.root = root
        self._runners = runners
        """Where versions run when not on this process's Batchers (`--engine ray`)."""
        self.trust_code = trust_code
        self.allow_env = tuple(allow_env)
        """Environment variables a model.yaml may read without --trust-code."""
        self._restarts: set[asyncio.Task[None]] = set()
        self._on_batch = on_batch
        self._entries: dict[str, ModelEntry] = {}

    def _load(self, model_dir: Path, only: Sequence[int] | None = None) -> ModelEntry:
        return load_model(model_dir, self.trust_code, only, self.allow_env)

    def load(self) -> None:
        """Load every model (synchronously; each failure is recorded on its entry)."""
        for model_dir in discover(self.root):
            entry = self._load(model_dir)
            self._entries[entry.name] = entry
        self._link_cascades()
        for entry in self._entries.values():
            for message in entry.errors:
                logger.error("model %s: %s", entry.name, message)

    def _link_cascades(self, member: str | None = None) -> list[ModelEntry]:
        """Link every cascade to its members' loaded versions, or (after `member` was
        reloaded) read afresh and link the cascades naming it."""
        linked = []
        for name, entry in list(self._entries.items()):
            cascade = entry.spec.cascade if entry.spec is not None else None
            if cascade is None or member not in (None, cascade.first, cascade.then):
                continue
            if member is not None:
                entry = self._entries[name] = self._load(entry.path)
            if not entry.errors:
                link_cascade(entry, self._entries.get)
            linked.append(entry)
        return linked

    def load_one(self, name: str, only: Sequence[int] | None = None) -> ModelEntry:
        """Load a single model by folder name (for in-process prediction), with the versions
        its model.yaml serves or those `only` names."""
        model_dir = self.root / name
        if not model_dir.is_dir():
            raise NotFoundError(self._unknown(name))
        entry = self._load(model_dir, only)
        self._entries[name] = entry
        cascade = entry.spec.cascade if entry.spec is not None else None
        if cascade is not None:
            for member in (cascade.first, cascade.then):
                if member not in self._entries and (self.root / member).is_dir():
                    self._entries[member] = self._load(self.root / member)
            if not entry.errors:
                link_cascade(entry, self._entries.get)
        return entry

    def entries(self) -> list[ModelEntry]:
        return [self._entries[name] for name in sorted(self._entries)]

    def entry(self, name: str) -> ModelEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise NotFoundError(self._unknown(name)) from None

    def _unknown(self, name: str) -> str:
        known = ", ".join(sorted(self._entries)) or "none"
        return f"unknown model {name!r}; this server has: {known}"

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """The version to serve: the one asked for, else the highest loaded."""
        entry = self.entry(name)
        if version is None or version == "":
            chosen = entry.latest
            if chosen is None:
                reason = "; ".join(entry.errors) or "it has no loaded version"
                raise ModelNotReadyError(f"model {name!r} is not ready: {reason}")
        else:
            if not (version.isascii() and version.isdigit()):
                raise NotFoundError(f"model version must be a number; got {version!r}")
            found = entry.versions.get(int(version))
            if found is None:
                served = ", ".join(str(v) for v in sorted(entry.versions)) or "none"
                raise NotFoundError(
                    f"model {name!r} has no version {version} loaded; loaded versions: {served}"
                )
            chosen = found
        if not chosen.ready:
            if isinstance(chosen, CascadeVersion) and chosen.serving:
                raise ModelNotReadyError(
                    f"cascade {name!r} is not ready: its members {chosen.first.name!r} and "
                    f"{chosen.then.name!r} must both be serving"
                )
            raise ModelNotReadyError(f"model {name!r} version {chosen.version} is not serving yet")
        return chosen

    def _make_runner(self, model: ModelVersion, model_dir: Path) -> Runner:
        remote = self._runners(model, model_dir) if self._runners is not None else None
        if remote is not None:
            return remote
        observer = self._on_batch
        label = str(model.version)
        return make_batcher(
            model,
            on_batch=(lambda size: observer(model.name, label, size)) if observer else None,
            on_hung=lambda: self._restart_hung(model),
        )

    def _restart_hung(self, model: ModelVersion) -> None:
        """A version's batch hung (its batcher failed its requests): not ready at once, and
        the model is loaded afresh in the background; the stuck thread is left behind."""
        model.serving = False
        task = asyncio.get_running_loop().create_task(self._restart(model.name))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self, name: str) -> None:
        try:
            await self.reload(name)
            logger.warning("model %s was restarted after a hung batch", name)
        except Exception:
            logger.exception("model %s hung and could not be restarted", name)

    async def start(self) -> None:
        """Start a batcher for every loaded version."""
        for entry in self._entries.values():
            await self._start_entry(entry)

    async def _start_entry(self, entry: ModelEntry) -> None:
        for model in entry.versions.values():
            if model.engine is not None:
                if self._runners is not None:
                    logger.info(
                        "model %s generates text: it runs in this process (--engine ray "
                        "deploys predictive models only)",
                        model.name,
                    )
                model.engine.start()
            elif isinstance(model, CascadeVersion):
                pass  # its members' batchers run its items
            else:
                batcher = self._make_runner(model, entry.path)
                await batcher.start()
                model.batcher = batcher
            model.serving = True

    async def stop(self) -> None:
        """Stop every batcher, answering what is queued first."""
        await asyncio.gather(*(self._stop_entry(e) for e in self._entries.values()))

    async def _stop_entry(self, entry: ModelEntry) -> None:
        for model in entry.versions.values():
            model.serving = False
            batcher, model.batcher = model.batcher, None
            if batcher is not None:
                await batcher.stop(drain=True)
                if batcher.hung:  # its backend is still in use by the stuck thread
                    continue
            await asyncio.to_thread(model.close)

    async def reload(self, name: str) -> ModelEntry:
        """Load a model afresh and swap it in; requests already queued on the old one finish."""
        model_dir = self.root / name
        if not model_dir.is_dir():
            raise NotFoundError(self._unknown(name))
        fresh = await asyncio.to_thread(self._load, model_dir)
        if fresh.spec is not None and fresh.spec.cascade is not None and not fresh.errors:
            link_cascade(fresh, self._entries.get)
        old = self._entries.get(name)
        if not fresh.versions and old is not None and old.versions:
            raise SpecError(
                f"model {name!r} was not reloaded, the running versions keep serving: "
                + "; ".join(fresh.errors)
            )
        await self._start_entry(fresh)
        self._entries[name] = fresh
        for entry in self._link_cascades(name):  # cascades over it route to its new versions
            await self._start_entry(entry)
        if old is not None:
            await self._stop_entry(old)
        return fresh
