"""`DataPlane`: the protocol-neutral operations every transport calls.

Transports convert their wire format to plain requests (codecs.InferRequest, lists of V1
instances) and call these methods; nothing here knows HTTP exists. The DataPlane routes to
a model version, sends each item through its Batcher, records metrics and attaches the
request id to internal errors so a user can find the traceback in the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inferd import __version__
from inferd.codecs import InferRequest, InferResponse, InferTensor
from inferd.datatypes import datatype_of
from inferd.errors import BadRequestError, InferdError, ModelError, ModelNotReadyError
from inferd.monitor.feedback import TruthCheck, truth_check
from inferd.monitor.metrics import Metrics
from inferd.monitor.recording import Outcome, Recorder, kept_inputs
from inferd.pipeline import ItemResult
from inferd.repository import ModelRepository, ModelVersion
from inferd.spec import TensorSpec
from inferd.stages import Item

if TYPE_CHECKING:
    from inferd.generate.engine import EngineStats
    from inferd.store import FeedbackEntry, Store

logger = logging.getLogger("inferd.server")

_PLATFORM = {"onnx": "onnxruntime_onnx", "python": "python"}


def _tensor_metadata(tensors: Sequence[TensorSpec], batched: bool) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "datatype": t.datatype,
            "shape": [-1, *t.shape] if batched else list(t.shape),
        }
        for t in tensors
    ]


def _merged_notes(notes: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-item notes as flat V2 response parameters; with several items, `KEY_items` lists
    the indices of the items a note is about (V2 parameter values are scalars)."""
    if len(notes) == 1:
        return dict(notes[0])
    merged: dict[str, Any] = {}
    for index, note in enumerate(notes):
        for key, value in note.items():
            merged[key] = value
            listed = merged.get(f"{key}_items")
            merged[f"{key}_items"] = f"{listed},{index}" if listed else str(index)
    return merged


@dataclass(frozen=True)
class _Copied:
    read: dict[str, Any]
    """Inputs the rules read."""
    kept: dict[str, Any] | None
    """Inputs the prediction log keeps."""


def _with_decisions(notes: dict[str, Any], decisions: list[list[str]] | None) -> dict[str, Any]:
    """V2 parameters are scalars, so the decisions are one string: each item's decision
    names joined by ",", the items joined by ";" ("specialist_review;" for two items)."""
    if decisions is None:
        return notes
    return {**notes, "decisions": ";".join(",".join(names) for names in decisions)}


class DataPlane:
    """Health, metadata and inference over a ModelRepository."""

    def __init__(
        self,
        repository: ModelRepository,
        metrics: Metrics,
        store: Store | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.repository = repository
        self.metrics = metrics
        self.store = store
        """The prediction log and the outbox; None when the server runs without a store."""
        self.recorder = recorder
        """Saves decisions' actions and logged predictions; None runs no rules' actions."""
        self.started = False

    def queue_states(self) -> Iterable[tuple[str, str, int, int]]:
        for entry in self.repository.entries():
            for model in entry.versions.values():
                if model.batcher is not None:
                    batcher = model.batcher
                    yield model.name, str(model.version), batcher.queue_depth, batcher.running

    # --- health and metadata ------------------------------------------------------------

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Ready once started and every model has a version serving."""
        return self.started and all(
            any(m.ready for m in e.versions.values()) for e in self.repository.entries()
        )

    def server_metadata(self) -> dict[str, Any]:
        return {
            "name": "inferd",
            "version": __version__,
            "extensions": ["binary_tensor_data", "kserve_v1", "metrics"],
        }

    def check_model(self, name: str, version: str | None = None) -> None:
        """Raise NotFound/NotReady before a transport spends time decoding a body."""
        self.repository.get(name, version)

    def known(self, name: str) -> bool:
        """Whether a model folder of this name exists (bounds metric label values)."""
        try:
            self.repository.entry(name)
        except InferdError:
            return False
        return True

    def model_ready(self, name: str, version: str | None = None) -> bool:
        entry = self.repository.entry(name)
        if version:
            found = entry.versions.get(int(version)) if version.isdigit() else None
            return found is not None and found.ready
        latest = entry.latest
        return latest is not None and latest.ready

    def generator(self, name: str) -> ModelVersion:
        """The serving version of a generation model (404 unknown, 400 not a generator)."""
        model = self.repository.get(name)
        if model.engine is None:
            raise BadRequestError(
                f"model {name!r} does not generate text (task {model.spec.task}); use "
                f"/v2/models/{name}/infer or /v1/models/{name}:predict"
            )
        return model

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

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        model = self.repository.get(name, version)
        return {
            "name": model.name,
            "versions": [str(v) for v in sorted(self.repository.entry(name).versions)],
            "platform": _PLATFORM.get(model.spec.backend, model.spec.backend),
            "inputs": _tensor_metadata(model.inputs, model.batched),
            "outputs": _tensor_metadata(model.outputs, model.batched),
            "parameters": {
                "task": model.spec.task,
                "max_batch_size": model.spec.max_batch_size,
                "description": model.spec.description,
            },
        }

    def model_index(self) -> list[dict[str, Any]]:
        """Every model folder and its state, loaded or not (the repository index)."""
        index = []
        for entry in self.repository.entries():
            for number, model in sorted(entry.versions.items()):
                index.append(
                    {
                        "name": entry.name,
                        "version": str(number),
                        "state": "READY" if model.ready else "LOADING",
                    }
                )
            if not entry.versions:
                index.append(
                    {"name": entry.name, "state": "UNAVAILABLE", "reason": "; ".join(entry.errors)}
                )
        return index

    # --- inference ----------------------------------------------------------------------

    async def infer(
        self,
        name: str,
        version: str | None,
        request: InferRequest,
        request_id: str,
        deadline: float | None = None,
    ) -> InferResponse:
        """An Open Inference Protocol (V2) request: tensors in, tensors out."""
        model = self.repository.get(name, version)
        pipeline = model.predictive
        items = pipeline.items_from_tensors(request.inputs)
        results, decisions = await self._answer(
            model, items, request_id, deadline, request.parameters, label_items=False
        )
        tensors = pipeline.tensors_from_predictions([r.prediction for r in results])
        outputs = [
            InferTensor(
                name=n,
                datatype=datatype_of(array.dtype),
                shape=list(array.shape),
                data=array,
            )
            for n, array in tensors.items()
        ]
        return InferResponse(
            model_name=model.name,
            model_version=str(model.version),
            id=request.id if request.id is not None else request_id,
            outputs=outputs,
            parameters=_with_decisions(
                _merged_notes([r.prediction.parameters for r in results]), decisions
            ),
        )

    async def predict(
        self,
        name: str,
        version: str | None,
        instances: Sequence[Any],
        request_id: str,
        deadline: float | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """A KServe V1 request: instances a person would send, predictions a person reads
        (with `decisions` when the model has decide rules)."""
        model = self.repository.get(name, version)
        items: list[Item] = []
        for position, instance in enumerate(instances):
            try:
                items.append(model.predictive.item_from_instance(instance))
            except InferdError as error:
                if len(instances) > 1:
                    raise error.about(f"instance {position}") from None
                raise
        results, decisions = await self._answer(
            model, items, request_id, deadline, parameters, label_items=True
        )
        answers = [r.prediction.as_json() for r in results]
        if decisions is not None:
            answers = [{**a, "decisions": d} for a, d in zip(answers, decisions, strict=True)]
        return answers

    async def _answer(
        self,
        model: ModelVersion,
        items: list[Item],
        request_id: str,
        deadline: float | None,
        parameters: Mapping[str, Any] | None,
        *,
        label_items: bool,
    ) -> tuple[list[ItemResult], list[list[str]] | None]:
        """Stages 2-5 for a request's items, then stage 6 when the model has rules or a
        prediction log; the decision names per item are None when it has no rules."""
        rules = model.predictive.rules
        if rules is None and model.spec.prediction_log is None:  # most models: no stage 6
            results = await self._run(model, items, request_id, deadline, label_items=label_items)
            return results, None
        copied = self._copy_inputs(model, items)
        started = time.perf_counter()
        results = await self._run(model, items, request_id, deadline, label_items=label_items)
        decisions = await self._decide(
            model, request_id, copied, results, parameters or {}, started
        )
        return results, decisions if rules is not None else None

    # --- feedback ------------------------------------------------------------------------

    async def feedback(self, entries: list[FeedbackEntry]) -> dict[str, Any]:
        """Attach ground truth to logged predictions: all entries or none (a wrong truth is a
        400 naming its entry); ids the prediction log lacks are reported back."""
        store = self.store
        if store is None:
            raise ModelNotReadyError("this server runs without a store; start it with --data-dir")
        ids = sorted({entry.request_id for entry in entries})
        logged = await asyncio.to_thread(store.find_predictions, ids)
        checks: dict[str, TruthCheck] = {}
        for position, entry in enumerate(entries):
            for record in logged.get(entry.request_id, []):
                if record.item != entry.item:
                    continue
                check = checks.get(record.model)
                if check is None:
                    check = checks[record.model] = self._truth_check(record.model)
                problem = check(entry.value)
                if problem is not None:
                    where = f"feedback[{position}]: " if len(entries) > 1 else ""
                    raise BadRequestError(where + problem)
        unknown = await asyncio.to_thread(store.attach_feedback, entries, time.time())
        return {
            "recorded": len(entries) - len(unknown),
            "unknown": [{"request_id": rid, "item": item} for rid, item in unknown],
        }

    def _truth_check(self, name: str) -> TruthCheck:
        try:
            model = self.repository.get(name)
        except InferdError:  # no longer served: its truth is taken as given
            return lambda _: None
        labels = model.pipeline.labels if model.pipeline is not None else None
        return truth_check(model.spec, labels)

    # --- decide and record (stage 6) ----------------------------------------------------

    def _copy_inputs(self, model: ModelVersion, items: list[Item]) -> list[_Copied]:
        """What rules and the prediction log need of each item's inputs, taken before the
        items are preprocessed."""
        rules = model.predictive.rules
        return [
            _Copied(
                rules.inputs_of(item) if rules is not None else {},
                kept_inputs(model.spec, item) if self.recorder is not None else None,
            )
            for item in items
        ]

    async def _decide(
        self,
        model: ModelVersion,
        request_id: str,
        copied: list[_Copied],
        results: list[ItemResult],
        parameters: Mapping[str, Any],
        started: float,
    ) -> list[list[str]]:
        """Run the rules on every item, then save the actions and log records before the
        caller answers; the decision names per item."""
        pipeline = model.predictive
        rules = pipeline.rules
        outcomes = [
            Outcome(
                item=index,
                prediction=result.prediction,
                decided=rules.decide(result.prediction, copy.read, parameters) if rules else [],
                inputs=copy.kept,
                read_inputs=copy.read,
            )
            for index, (copy, result) in enumerate(zip(copied, results, strict=True))
        ]
        if self.recorder is not None:
            await self.recorder.save(
                model.spec,
                str(model.version),
                pipeline.model_dir,
                request_id,
                outcomes,
                time.perf_counter() - started,
            )
        elif any(outcome.decided for outcome in outcomes) and any(
            rule.actions for outcome in outcomes for rule in outcome.decided
        ):
            logger.warning("request %s: decisions made but no store to act on them", request_id)
        for outcome in outcomes:
            for rule in outcome.decided:
                self.metrics.decision(model.name, rule.decision)
        return [[rule.decision for rule in outcome.decided] for outcome in outcomes]

    async def _run(
        self,
        model: ModelVersion,
        items: list[Item],
        request_id: str,
        deadline: float | None,
        *,
        label_items: bool,
    ) -> list[ItemResult]:
        batcher = model.batcher
        if batcher is None:  # stopped between routing and now (a reload or shutdown)
            raise ModelNotReadyError(f"model {model.name!r} version {model.version} is not serving")
        started = time.perf_counter()
        try:
            if len(items) == 1:
                outcomes: list[tuple[ItemResult, float] | BaseException] = [
                    await batcher.submit(items[0], deadline)
                ]
            else:
                outcomes = await asyncio.gather(
                    *(batcher.submit(item, deadline) for item in items), return_exceptions=True
                )
        except ModelError as error:
            raise self._with_request_id(error, request_id) from error
        results: list[ItemResult] = []
        for position, outcome in enumerate(outcomes):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, ModelError):
                    raise self._with_request_id(outcome, request_id) from outcome
                if isinstance(outcome, InferdError) and label_items and len(items) > 1:
                    raise outcome.about(f"instance {position}") from None
                raise outcome
            result, queue_s = outcome
            self.metrics.observe_item(
                model.name, queue_s, result.preprocess_s, result.model_s, result.postprocess_s
            )
            results.append(result)
        self.metrics.stage(model.name, "total").observe(time.perf_counter() - started)
        return results

    def _with_request_id(self, error: ModelError, request_id: str) -> ModelError:
        logger.error("request %s failed inside the model: %s", request_id, error.message)
        return ModelError(
            f"{error.message} (request id {request_id}; the traceback is in the server log)"
        )
