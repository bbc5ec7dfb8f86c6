"""A cascade: a small model answers every item, and the items it is unsure of are sent on to
a bigger one (model.yaml `cascade: {first, then, when}`).

The routing is per item. Served, an item goes through each member's own Batcher (`route`),
so cascade traffic shares batches with the members' direct traffic; in process (`run`, what
`inferd evaluate` and `inferd predict` use) the unsure items of a batch go on as one batch.
Stage 6 runs once, on the cascade's final answer, with the cascade model's own rules: the
cascade's Pipeline is one `Pipeline.over` its first member, with this routing as stages 2-5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from inferd.errors import BadRequestError, InferdError, SpecError
from inferd.pipeline.batch import ItemResult
from inferd.pipeline.pipeline import Pipeline, Submit
from inferd.spec import CascadeSpec, ModelSpec, TensorSpec
from inferd.stages import Item, Prediction
from inferd.stages.decide import Rules, plain

FIRST = "first"
THEN = "then"
"""The values of the `cascade` note each answer carries: which member answered it."""


class Cascade:
    """The routing of one cascade model over its two members' pipelines."""

    def __init__(self, spec: ModelSpec, first: Pipeline, then: Pipeline) -> None:
        assert spec.cascade is not None
        self.spec: CascadeSpec = spec.cascade
        self.name = spec.name
        self.first = first
        self.then = then
        check_members(spec, first, then)
        self._rules = Rules(
            first.spec.model_copy(update={"decide": []}), first.labels, first.inputs, None, False
        )
        self.when = self._rules.condition(self.spec.when, f"cascade {self.name!r}: cascade.when")
        names = self.when.names()
        if any(path[0] == "parameters" for path in names):
            raise SpecError(
                f"cascade {self.name!r}: cascade.when reads request parameters; it may read "
                "only the first model's prediction and the item's inputs.<name>"
            )
        self._inputs = sorted({p[1] for p in names if p[0] == "inputs" and len(p) > 1})

    def sends_on(self, item: Item, prediction: Prediction) -> bool:
        """Whether `when` holds for the first model's prediction of this item."""
        inputs = {name: plain(item.inputs[name]) for name in self._inputs if name in item.inputs}
        try:
            return self._rules.holds(self.when, prediction, inputs, {})
        except BadRequestError as error:
            raise error.about(f"cascade {self.name!r}: cascade.when") from None

    # --- served: through each member's Batcher -------------------------------------------

    async def route(
        self, item: Item, deadline: float | None, first: Submit, then: Callable[[], Submit]
    ) -> tuple[ItemResult, float]:
        """One item through the first member, and on through the second if it is unsure;
        `then` gives the second member's submit (its current version) only when needed."""
        result, queue_s = await first(item, deadline)
        if not self.sends_on(item, result.prediction):
            result.prediction.parameters["cascade"] = FIRST
            return result, queue_s
        try:
            second, second_queue_s = await then()(Item.of(item.inputs), deadline)
        except InferdError as error:
            raise error.about(
                f"cascade {self.name!r}: the second model {self.spec.then!r}"
            ) from None
        return _answered_by_then(result, second), queue_s + second_queue_s

    # --- in process: a batch at a time (the Pipeline's stages 2-5) ------------------------

    def run(self, items: Sequence[Item]) -> list[ItemResult | BaseException]:
        """The batch through the first member; its unsure items through the second together."""
        results = self.first.run_batch(items)
        unsure: list[int] = []
        for index, (item, result) in enumerate(zip(items, results, strict=True)):
            if not isinstance(result, ItemResult):
                continue
            try:
                sent_on = self.sends_on(item, result.prediction)
            except InferdError as error:
                results[index] = error
                continue
            if sent_on:
                unsure.append(index)
            else:
                result.prediction.parameters["cascade"] = FIRST
        if unsure:
            seconds = self.then.run_batch([Item.of(items[i].inputs) for i in unsure])
            for index, second in zip(unsure, seconds, strict=True):
                first_result = results[index]
                assert isinstance(first_result, ItemResult)
                if isinstance(second, InferdError):
                    second = second.about(
                        f"cascade {self.name!r}: the second model {self.spec.then!r}"
                    )
                results[index] = (
                    _answered_by_then(first_result, second)
                    if isinstance(second, ItemResult)
                    else second
                )
        return results

    def feeds(self, items: Sequence[Item]) -> list[dict[str, np.ndarray]]:
        raise BadRequestError(
            f"cascade {self.name!r} has no model of its own to feed; time its members "
            f"({self.spec.first!r}, {self.spec.then!r}) instead"
        )


def _answered_by_then(first: ItemResult, second: ItemResult) -> ItemResult:
    """The second member's answer, timed as both members' work together."""
    second.prediction.parameters["cascade"] = THEN
    return replace(
        second,
        preprocess_s=first.preprocess_s + second.preprocess_s,
        model_s=first.model_s + second.model_s,
        postprocess_s=first.postprocess_s + second.postprocess_s,
    )


def _describe(tensors: list[TensorSpec]) -> str:
    return ", ".join(f"{t.name} {t.datatype}{t.shape}" for t in tensors) or "none"


def check_members(spec: ModelSpec, first: Pipeline, then: Pipeline) -> None:
    """A cascade answers with either member, so both must take and give the same: same task,
    wire inputs, outputs and labels (a SpecError says what differs)."""
    assert spec.cascade is not None
    a, b = spec.cascade.first, spec.cascade.then
    where = f"cascade {spec.name!r}: its members {a!r} and {b!r}"
    differences = []
    if first.spec.task != then.spec.task:
        differences.append(f"tasks ({first.spec.task} and {then.spec.task})")
    for what, mine, theirs in (
        ("wire inputs", first.inputs, then.inputs),
        ("outputs", first.outputs, then.outputs),
    ):
        shape = [(t.name, t.datatype, list(t.shape)) for t in mine]
        if shape != [(t.name, t.datatype, list(t.shape)) for t in theirs]:
            differences.append(f"{what} ({_describe(mine)} and {_describe(theirs)})")
    if first.labels != then.labels:
        only_a = [label for label in first.labels or [] if label not in (then.labels or [])]
        only_b = [label for label in then.labels or [] if label not in (first.labels or [])]
        detail = (
            f"only {a!r} has {only_a}, only {b!r} has {only_b}"
            if only_a or only_b
            else "the same labels in another order"
        )
        differences.append(f"labels ({detail})")
    if first.batched != then.batched:
        differences.append("batching (one has a batch dimension, the other not)")
    if differences:
        raise SpecError(
            f"{where} differ in {'; '.join(differences)}; a cascade answers with either, so "
            "they must take the same inputs and give the same outputs and labels"
        )
    if "task" in spec.model_fields_set and spec.task != first.spec.task:
        raise SpecError(
            f"cascade {spec.name!r} says task {spec.task} but its members are "
            f"{first.spec.task} models; make them the same or leave task out"
        )


def cascade_pipeline(
    spec: ModelSpec, first: Pipeline, then: Pipeline, model_dir: Path | None, trust_code: bool
) -> tuple[Pipeline, Cascade]:
    """A cascade model's Pipeline and its routing: the first member's decoding and wire
    tensors, stages 2-5 routed through both members, and stage 6 by the cascade's own rules
    (its spec takes the members' task and the first member's batching)."""
    cascade = Cascade(spec, first, then)
    effective = spec.model_copy(update={"task": first.spec.task, "batching": first.spec.batching})
    return Pipeline.over(effective, first, cascade, model_dir, trust_code), cascade
