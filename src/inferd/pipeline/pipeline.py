"""`Pipeline`: the six stages for one model version, built from its ModelSpec.

    1 decode       wire tensors (V2) or instances (V1) → items, validated against the spec
    2 preprocess   per item (image, text, audio, tabular, series)
    3 model        the batch: items with equal tensor shapes are stacked and run together
    4 predict      raw outputs split back per item
    5 postprocess  per item (classify, regress, detect, forecast)
    6 decide/act   rules over each prediction; their actions and the prediction log saved

`process` takes a request's decoded items through stages 2-6. Stages 2-5 run in a batch
worker thread (`run_batch`, called by the model's Batcher, where the items may share a batch
with other requests' items), so the event loop only decodes, decides and encodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inferd.backends import Backend
from inferd.codecs import InferTensor
from inferd.errors import InferdError, ModelError
from inferd.pipeline.act import Act, Recorder
from inferd.pipeline.batch import BatchRunner, ItemResult
from inferd.pipeline.wiring import Wiring
from inferd.spec import ModelSpec, TensorSpec
from inferd.stages import Item, Prediction
from inferd.stages.decide import Rules
from inferd.stages.decode import InputDecoder

Submit = Callable[[Item, float | None], Awaitable[tuple[ItemResult, float]]]
"""Queues one item for stages 2-5 (the model's Batcher): its result and seconds queued."""


class Runs(Protocol):
    """Stages 2-5 over a batch (`BatchRunner`, or a cascade's routing over its members)."""

    def run(self, items: Sequence[Item]) -> list[ItemResult | BaseException]: ...

    def feeds(self, items: Sequence[Item]) -> list[dict[str, np.ndarray]]: ...


ItemObserver = Callable[[str, ItemResult, float], None]
"""Told of every item that went through stages 2-5: the model's name, the item's result and
its seconds queued (metrics)."""


@dataclass(slots=True)
class Request:
    """What the stages need to know of the request their items came in."""

    id: str
    """Names the request in the log, in the prediction log and in actions' idempotency keys."""
    deadline: float | None = None
    """time.monotonic() by which an item must have started running, or it fails with 504."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """The client's request parameters; decide rules may read them."""
    item_word: str | None = None
    """When set ("instance"), a failing item of a multi-item request is named by its
    position ("instance 2: ...")."""


@dataclass(slots=True)
class Answer:
    """One item through stages 2-6."""

    result: ItemResult
    decisions: list[str] | None
    """The names of the decisions made about it; None when the model has no rules."""

    @property
    def prediction(self) -> Prediction:
        return self.result.prediction


class Pipeline:
    """The stages of one model version; thread-safe, and free of any protocol's shapes."""

    def __init__(
        self,
        spec: ModelSpec,
        backend: Backend,
        labels: list[str] | None = None,
        model_dir: Path | None = None,
        trust_code: bool = False,
        version: int = 1,
    ) -> None:
        wiring = Wiring(spec, backend, labels, model_dir)
        self._compose(spec, backend, labels, model_dir, trust_code, version, wiring)
        self._batches: Runs = BatchRunner(wiring)

    @classmethod
    def over(
        cls,
        spec: ModelSpec,
        model: Pipeline,
        runs: Runs,
        model_dir: Path | None,
        trust_code: bool,
    ) -> Pipeline:
        """A pipeline with `model`'s decoding and wire tensors, `runs` as its stages 2-5 and
        stage 6 by `spec` (a cascade: its routing over its members; see cascade.py)."""
        pipeline = cls.__new__(cls)
        pipeline._compose(spec, model.backend, model.labels, model_dir, trust_code, 1, model)
        pipeline._batches = runs
        return pipeline

    def _compose(
        self,
        spec: ModelSpec,
        backend: Backend,
        labels: list[str] | None,
        model_dir: Path | None,
        trust_code: bool,
        version: int,
        tensors: Wiring | Pipeline,
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.labels = labels
        self.model_dir = model_dir
        self.batched = spec.batched
        self.inputs: list[TensorSpec] = tensors.inputs
        self.outputs: list[TensorSpec] = tensors.outputs
        self.ragged: dict[str, Any] = tensors.ragged
        """Outputs whose first axis varies per item, and the value that pads them."""
        self.decoder = InputDecoder(self.inputs, self.batched)
        self.rules = (
            Rules(spec, labels, self.inputs, model_dir, trust_code) if spec.decide else None
        )
        self._act = Act(spec, self.rules, version, model_dir)
        self._acts = self._act.needed

    # --- stage 1: decode (see stages/decode.py) ------------------------------------------

    def items_from_tensors(self, tensors: Sequence[InferTensor]) -> list[Item]:
        """V2 input tensors → items (split along the batch dimension when the model batches)."""
        return self.decoder.items_from_tensors(tensors)

    def item_from_instance(self, instance: Any) -> Item:
        """A V1 instance → one item."""
        return self.decoder.item_from_instance(instance)

    # --- stages 2-5 (in a worker thread) -------------------------------------------------

    def run_batch(self, items: Sequence[Item]) -> list[ItemResult | BaseException]:
        """Preprocess each item, run the model on stacked groups, postprocess each item;
        each failing item has its exception in its place."""
        return self._batches.run(items)

    def feeds(self, instances: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        """V1 instances → the model inputs they make as one batch (stages 1-2 and stacking;
        more than one feed when their tensors do not stack)."""
        return self._batches.feeds([self.item_from_instance(i) for i in instances])

    # --- stages 2-6 for one request ------------------------------------------------------

    async def process(
        self,
        items: list[Item],
        submit: Submit,
        request: Request,
        *,
        recorder: Recorder | None = None,
        observe: ItemObserver | None = None,
    ) -> list[Answer]:
        """Stages 2-5 through `submit`, then stage 6; the first failing item fails the
        request (its batch-mates from other requests are unaffected)."""
        started = time.perf_counter()
        if len(items) == 1:
            outcomes: list[tuple[ItemResult, float] | BaseException] = [
                await submit(items[0], request.deadline)
            ]
        else:
            outcomes = await asyncio.gather(
                *(submit(item, request.deadline) for item in items), return_exceptions=True
            )
        answers: list[Answer] = []
        ran: list[tuple[ItemResult, float]] = []
        for position, outcome in enumerate(outcomes):
            if isinstance(outcome, BaseException):
                if (
                    request.item_word is not None
                    and len(items) > 1
                    and isinstance(outcome, InferdError)
                    and not isinstance(outcome, ModelError)
                ):
                    raise outcome.about(f"{request.item_word} {position}") from None
                raise outcome
            result, queue_s = outcome
            if observe is not None:
                observe(self.spec.name, result, queue_s)
            answers.append(Answer(result, None))
            ran.append(outcome)
        if self._acts:
            decisions = await self._act.run(
                items,
                ran,
                request.id,
                request.parameters,
                recorder,
                time.perf_counter() - started,
            )
            if self.rules is not None:
                for answer, names in zip(answers, decisions, strict=True):
                    answer.decisions = names
        return answers

    # --- in-process use (inferd predict / evaluate) -----------------------------------------

    def predict_instances(self, instances: Sequence[Any]) -> list[Prediction | InferdError]:
        """Run V1 instances without a server, in batches of the model's size (stages 1-5)."""
        size = max(1, self.spec.max_batch_size)
        outcomes: list[Prediction | InferdError] = []
        for start in range(0, len(instances), size):
            chunk: list[Item | InferdError] = []
            for instance in instances[start : start + size]:
                try:
                    chunk.append(self.item_from_instance(instance))
                except InferdError as error:
                    chunk.append(error)
            items = [c for c in chunk if not isinstance(c, InferdError)]
            ran = iter(self.run_batch(items))
            for entry in chunk:
                if isinstance(entry, InferdError):
                    outcomes.append(entry)
                    continue
                result = next(ran)
                if isinstance(result, ItemResult):
                    outcomes.append(result.prediction)
                elif isinstance(result, InferdError):
                    outcomes.append(result)
                else:
                    outcomes.append(ModelError(str(result)))
        return outcomes
