"""`DataPlane`: the protocol-neutral operations every transport calls.

Protocol adapters (`inferd.api`) turn their wire format into plain requests and call these
methods; nothing here knows HTTP or any protocol's shapes. The DataPlane routes to a model
version, hands the request's items to its Pipeline (all six stages) or its prompt to its
generation engine, records metrics, and attaches the request id to internal errors so a user
can find the traceback in the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inferd.codecs import InferTensor
from inferd.errors import (
    BadRequestError,
    InferdError,
    ModelError,
    ModelNotReadyError,
    NotFoundError,
    PayloadTooLargeError,
)
from inferd.monitor.costs import Accounting
from inferd.monitor.feedback import TruthCheck, truth_check
from inferd.monitor.metrics import Metrics
from inferd.monitor.report import report_from_store
from inferd.pipeline import Answer, ItemResult, Recorder, Request
from inferd.repository import ModelEntry, ModelRepository, ModelVersion, version_numbers
from inferd.stages import Item

if TYPE_CHECKING:
    from inferd.generate.engine import EngineStats
    from inferd.generate.request import Delta, SamplingParams
    from inferd.monitor.tracing import Tracing
    from inferd.store import FeedbackEntry, Store

logger = logging.getLogger("inferd.dataplane")


@dataclass(slots=True)
class Served:
    """A request's answers, and the model version that gave them."""

    model: ModelVersion
    answers: list[Answer]

    @property
    def served_by(self) -> str | None:
        """The replicas that ran its items (`--engine ray`), comma-separated; None when this
        process did."""
        names = {a.result.served_by for a in self.answers if a.result.served_by is not None}
        return ",".join(sorted(names)) if names else None


class DataPlane:
    """Health, metadata, inference, generation and feedback over a ModelRepository."""

    def __init__(
        self,
        repository: ModelRepository,
        metrics: Metrics,
        store: Store | None = None,
        recorder: Recorder | None = None,
        accounting: Accounting | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.repository = repository
        self.tracing = tracing
        """Stage and batch spans of every item; None unless `--otel-exporter` is given."""
        self.accounting = accounting
        """Prices every prediction into the cost metrics; None with `--no-monitor`."""
        self.metrics = metrics
        self.store = store
        """The prediction log and the outbox; None when the server runs without a store."""
        self.recorder = recorder
        """Saves decisions' actions and logged predictions; None runs no rules' actions."""
        self.started = False
        self.peers_ready: Callable[[], bool] = _alone
        """Whether the other `--workers` processes serve too (always, in one process)."""

    # --- health and metadata ------------------------------------------------------------

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Ready once started and every model has a version serving."""
        return (
            self.started
            and all(any(m.ready for m in e.versions.values()) for e in self.repository.entries())
            and self.peers_ready()
        )

    def model(self, name: str, version: str | None = None) -> ModelVersion:
        """The version that serves a request: 404 unknown, 503 not ready. Transports call it
        before they spend time decoding a body."""
        return self.repository.get(name, version)

    def entry(self, name: str) -> ModelEntry:
        return self.repository.entry(name)

    def entries(self) -> list[ModelEntry]:
        """Every model folder, loaded or not (the repository index)."""
        return self.repository.entries()

    def known(self, name: str) -> bool:
        """Whether a model folder of this name exists (bounds metric label values)."""
        try:
            self.repository.entry(name)
        except InferdError:
            return False
        return True

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Whether it answers now; a version it does not have (in its folder) is a 404,
        not "not ready"."""
        entry = self.repository.entry(name)
        if version:
            if (
                version.isascii()
                and version.isdigit()
                and int(version) in version_numbers(entry.path)
            ):
                found = entry.versions.get(int(version))
                return found is not None and found.ready
            self.repository.get(name, version)  # says why it is not there
            return False
        latest = entry.latest
        return latest is not None and latest.ready

    def queue_states(self) -> Iterable[tuple[str, str, int, int]]:
        for entry in self.repository.entries():
            for model in entry.versions.values():
                if model.batcher is not None:
                    batcher = model.batcher
                    yield model.name, str(model.version), batcher.queue_depth, batcher.running

    def engine_states(self) -> Iterable[tuple[str, EngineStats]]:
        for model in self.generation_models():
            assert model.engine is not None
            yield model.name, model.engine.stats()

    def generation_models(self) -> list[ModelVersion]:
        return [
            model
            for entry in self.repository.entries()
            if (model := entry.latest) is not None and model.engine is not None and model.ready
        ]

    # --- inference ----------------------------------------------------------------------

    async def infer(
        self, name: str, version: str | None, tensors: Sequence[InferTensor], request: Request
    ) -> Served:
        """Named tensors in (each split along the batch dimension when the model batches)."""
        model = self.repository.get(name, version)
        if model.batched and tensors and tensors[0].shape:
            self._check_item_count(model, tensors[0].shape[0])  # before splitting them
        items = model.predictive.items_from_tensors(tensors)
        return Served(model, await self._process(model, items, request))

    async def predict(
        self, name: str, version: str | None, instances: Sequence[Any], request: Request
    ) -> Served:
        """Instances in, as a person would send them: one item each."""
        model = self.repository.get(name, version)
        self._check_item_count(model, len(instances))
        pipeline = model.predictive
        items: list[Item] = []
        for position, instance in enumerate(instances):
            try:
                items.append(pipeline.item_from_instance(instance))
            except InferdError as error:
                if len(instances) > 1 and request.item_word is not None:
                    raise error.about(f"{request.item_word} {position}") from None
                raise
        return Served(model, await self._process(model, items, request))

    def _check_item_count(self, model: ModelVersion, count: int) -> None:
        limit = model.spec.batching.request_item_limit
        if count > limit:
            raise PayloadTooLargeError(
                f"the request has {count} items; model {model.name!r} takes at most {limit} "
                "per request (model.yaml batching.max_items_per_request, at most its "
                "max_queue); send them in smaller requests"
            )

    async def _process(
        self, model: ModelVersion, items: list[Item], request: Request
    ) -> list[Answer]:
        submit = model.submit  # 503 when stopped between routing and now (reload, shutdown)
        metrics = self.metrics
        name = model.name
        started = time.perf_counter()
        observe = self._observe if self.tracing is None else self._traced(str(model.version))
        try:
            answers = await model.predictive.process(
                items, submit, request, recorder=self.recorder, observe=observe
            )
        except ModelError as error:
            raise self._with_request_id(error, request.id) from error
        seconds = time.perf_counter() - started
        metrics.stage(name, "total").observe(seconds)
        cascade = model.spec.cascade is not None
        accounting = self.accounting
        if accounting is not None:
            version = str(model.version)
            slo = model.spec.slo
            if slo is not None:
                metrics.within_objective(name, version, slo.p99_ms / 1000, seconds)
            for answer in answers:
                result = answer.result
                charge = accounting.charge(result.cpu_s, result.gpu_s)
                metrics.charge(name, version, result.cpu_s, result.gpu_s, charge)
        for answer in answers:
            for decision in answer.decisions or ():
                metrics.decision(name, decision)
            if cascade:
                metrics.cascade_item(name, answer.prediction.parameters.get("cascade", "?"))
        return answers

    def _observe(self, model: str, result: ItemResult, queue_s: float) -> None:
        self.metrics.observe_item(
            model, queue_s, result.preprocess_s, result.model_s, result.postprocess_s
        )

    def _traced(self, version: str) -> Callable[[str, ItemResult, float], None]:
        """The item observer when tracing: metrics, then the item's stage spans."""
        tracing = self.tracing
        assert tracing is not None

        def observe(model: str, result: ItemResult, queue_s: float) -> None:
            self._observe(model, result, queue_s)
            tracing.item(model, version, result, queue_s)

        return observe

    def _with_request_id(self, error: ModelError, request_id: str) -> ModelError:
        logger.error("request %s failed inside the model: %s", request_id, error.message)
        return ModelError(
            f"{error.message} (request id {request_id}; the traceback is in the server log)"
        )

    # --- generation ---------------------------------------------------------------------

    def generator(self, name: str) -> ModelVersion:
        """The serving version of a generation model (404 unknown, 400 not a generator)."""
        model = self.repository.get(name)
        if model.engine is None:
            raise BadRequestError(
                f"model {name!r} does not generate text (task {model.spec.task}); send it "
                "inference requests (V2 infer or V1 predict) instead"
            )
        return model

    async def generate(
        self, name: str, prompt: str, params: SamplingParams
    ) -> AsyncIterator[Delta]:
        """Text generated from a prompt, piece by piece; a bad prompt or option fails here,
        before the first piece, so a streaming transport has not yet answered."""
        engine = self.generator(name).engine
        assert engine is not None
        return engine.stream(await engine.tokenize(prompt), params)

    # --- feedback ------------------------------------------------------------------------

    async def feedback(self, entries: list[FeedbackEntry]) -> dict[str, Any]:
        """Attach ground truth to logged predictions: all entries or none. A wrong truth is a
        400 naming its entry; an id the prediction log lacks, a 404 naming it."""
        store = self.store
        if store is None:
            raise ModelNotReadyError("this server runs without a store; start it with --data-dir")
        if self.recorder is not None:
            await self.recorder.flush()  # log rows written behind their answers
        ids = sorted({entry.request_id for entry in entries})
        logged = await asyncio.to_thread(store.find_predictions, ids)
        checks: dict[str, TruthCheck] = {}
        unknown: list[str] = []
        for position, entry in enumerate(entries):
            where = f"feedback[{position}]: " if len(entries) > 1 else ""
            found = [r for r in logged.get(entry.request_id, []) if r.item == entry.item]
            if not found:
                unknown.append(f"{where}request id {entry.request_id!r} item {entry.item}")
            for record in found:
                check = checks.get(record.model)
                if check is None:
                    check = checks[record.model] = self._truth_check(record.model)
                problem = check(entry.value)
                if problem is not None:
                    raise BadRequestError(where + problem)
        if unknown:
            shown = "; ".join(unknown[:10]) + (
                f"; and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            )
            raise NotFoundError(
                f"no logged prediction for {shown}. Only models with a prediction_log are "
                "logged (sampled at its sample_rate, kept --retention-days); nothing was recorded"
            )
        missed = await asyncio.to_thread(store.attach_feedback, entries, time.time())
        return {"recorded": len(entries) - len(missed)}

    # --- the four costs ------------------------------------------------------------------

    async def report(self, name: str, window_s: float | None = None) -> dict[str, Any]:
        """A model's latency, cost, energy, accuracy, fairness and drift over a window, from
        the prediction log (built in a thread: it reads the store and bootstraps)."""
        entry = self.repository.entry(name)
        store = self.store
        if store is None:
            raise ModelNotReadyError(
                "this server runs without a store, so it keeps no prediction log to report "
                "on; start it with --data-dir or --store"
            )
        spec = entry.spec
        if spec is None:
            raise ModelNotReadyError(f"model {name!r} did not load: {'; '.join(entry.errors)}")
        latest = entry.latest
        labels = latest.pipeline.labels if latest is not None and latest.pipeline else None
        accounting = self.accounting
        if self.recorder is not None:
            await self.recorder.flush()
        return await asyncio.to_thread(
            report_from_store,
            store,
            spec,
            entry.path,
            labels=labels,
            window_s=window_s,
            currency=accounting.pricing.currency if accounting else None,
            gco2_per_kwh=accounting.pricing.grid_gco2_per_kwh if accounting else None,
            notes=accounting.notes() if accounting else ["accounting is off (--no-monitor)"],
        )

    def _truth_check(self, name: str) -> TruthCheck:
        try:
            model = self.repository.get(name)
        except InferdError:  # no longer served: its truth is taken as given
            return lambda _: None
        labels = model.pipeline.labels if model.pipeline is not None else None
        return truth_check(model.spec, labels)


def _alone() -> bool:
    return True
