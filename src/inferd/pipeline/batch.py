"""Stages 2-5 over one batch, in a worker thread: preprocess each item, run the model on
groups of items whose tensors stack, split the outputs back and postprocess each item.

Every item's failure is its own: the result list holds an exception in that item's place.
A model call that fails on a group is run again on each half, down to the items it fails on
alone, so one poisonous item (a value the model crashes on) never fails its batch-mates,
which are often other clients' requests.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferd.errors import InferdError, ModelError, SpecError
from inferd.pipeline.usage import PROCESS_CPU
from inferd.pipeline.wiring import Wiring
from inferd.stages import Item, Prediction

logger = logging.getLogger("inferd.pipeline")
_calls = itertools.count(1)  # next() on a count is atomic: worker threads share it


@dataclass
class ItemResult:
    """One item's prediction and how long each stage took for it (seconds)."""

    prediction: Prediction
    preprocess_s: float
    model_s: float
    postprocess_s: float
    batch_size: int
    cpu_s: float = 0.0
    """Its share of the batch's CPU time (`usage.py`), by its share of the model's input."""
    gpu_s: float = 0.0
    """Its share of the model call's time when the model runs on a GPU."""
    batch: int = 0
    """Which model call it shared (a number unique in this process): traces link by it."""
    served_by: str | None = None
    """The replica that ran it when it ran in another process (`--engine ray`), told to the
    client in a header; None in this process."""


_Prepared = tuple[int, Item, float]
"""(position in the batch, the preprocessed item, its preprocessing seconds)."""


class BatchRunner:
    """Runs batches through one model version's stages 2-5; thread-safe."""

    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self.name = wiring.spec.name
        self.batched = wiring.spec.batched
        self.backend = wiring.backend
        self._check_inputs = wiring.spec.backend == "onnx"
        self._takes = frozenset(wiring.model_input_names)
        self.on_gpu = bool(getattr(wiring.backend, "on_gpu", False))

    def run(self, items: Sequence[Item]) -> list[ItemResult | BaseException]:
        mark = PROCESS_CPU.start()
        try:
            results = self._run(items)
        finally:
            cpu_s = PROCESS_CPU.stop(mark)
        _share_cpu(results, cpu_s)
        return results

    def _run(self, items: Sequence[Item]) -> list[ItemResult | BaseException]:
        results: list[ItemResult | BaseException | None] = [None] * len(items)
        prepared: list[_Prepared] = []
        steps = self.wiring.preprocess
        for index, item in enumerate(items):
            started = time.perf_counter()
            try:
                for step in steps:
                    step(item)
                self._check_model_inputs(item)
            except Exception as error:
                results[index] = self._own_error(error, "preprocessing")
                continue
            prepared.append((index, item, time.perf_counter() - started))

        for group in self._groups(prepared):
            self._run_group(group, results)
        for index, item in enumerate(items):
            result = results[index]
            if item.notes and isinstance(result, ItemResult):
                result.prediction.parameters.update(item.notes)
        return [r if r is not None else ModelError("item was not processed") for r in results]

    def feeds(self, items: Sequence[Item]) -> list[dict[str, np.ndarray]]:
        """The model inputs a batch of these items becomes (stages 2 and 3 up to the model
        call), one feed per group that stacks: what the optimize tools time variants on."""
        prepared: list[_Prepared] = []
        for index, item in enumerate(items):
            for step in self.wiring.preprocess:
                step(item)
            self._check_model_inputs(item)
            prepared.append((index, item, 0.0))
        return [self._feed(group) for group in self._groups(prepared)]

    def _feed(self, group: list[_Prepared]) -> dict[str, np.ndarray]:
        first = group[0][1].values
        # Wire inputs the graph does not take (kept for the log and the rules) stay out.
        names = [
            n
            for n in first
            if isinstance(first[n], np.ndarray) and (not self._check_inputs or n in self._takes)
        ]
        if self.batched:
            return {n: self._stack(n, [entry[1].values[n] for entry in group]) for n in names}
        return {n: first[n] for n in names}

    def _check_model_inputs(self, item: Item) -> None:
        if self._check_inputs:
            missing = [n for n in self.wiring.model_input_names if n not in item.values]
            if missing:
                raise SpecError(
                    f"model {self.name!r}: no stage produces model input(s) "
                    f"{', '.join(missing)}; check the preprocess stages in model.yaml"
                )

    def _groups(self, prepared: list[_Prepared]) -> list[list[_Prepared]]:
        """Items whose tensors have equal shapes and dtypes can share one model call
        (the last axis of padded tensors, such as token ids, may differ)."""
        if not self.batched:
            return [[entry] for entry in prepared]
        if len(prepared) < 2:  # a lone item (the usual batch at low load) has nothing to match
            return [prepared] if prepared else []
        pads = self.wiring.pad_values
        groups: dict[tuple[Any, ...], list[_Prepared]] = {}
        for entry in prepared:
            key = tuple(
                (name, value.shape[:-1] if name in pads else value.shape, value.dtype.str)
                for name, value in sorted(entry[1].values.items())
                if isinstance(value, np.ndarray)
            )
            groups.setdefault(key, []).append(entry)
        return list(groups.values())

    def _run_group(
        self, group: list[_Prepared], results: list[ItemResult | BaseException | None]
    ) -> None:
        started = time.perf_counter()
        try:
            feed = self._feed(group)
            outputs = self.backend.run(feed)
            if self.batched:
                bad = [n for n, v in outputs.items() if v.ndim == 0 or v.shape[0] != len(group)]
                if bad:
                    raise _NoBatchDimension(
                        f"output(s) {', '.join(bad)} do not have the batch size {len(group)} "
                        "as their first dimension"
                    )
        except Exception as error:
            if len(group) > 1 and not isinstance(error, _NoBatchDimension):
                # Find the item(s) it fails on: the others are answered.
                half = len(group) // 2
                self._run_group(group[:half], results)
                self._run_group(group[half:], results)
                return
            logger.exception("model %r failed on an item", self.name)
            failure = ModelError(f"model {self.name!r} failed while running: {error}")
            for index, _, _ in group:
                results[index] = failure
            return
        model_s = time.perf_counter() - started
        call = next(_calls)
        work = [_work(item) for _, item, _ in group]
        total_work = sum(work) or 1
        for position, (index, item, preprocess_s) in enumerate(group):
            item_outputs = {n: v[position] for n, v in outputs.items()} if self.batched else outputs
            post_started = time.perf_counter()
            try:
                prediction = self._predict(item_outputs, item.context)
            except Exception as error:
                results[index] = self._own_error(error, "postprocessing")
                continue
            results[index] = ItemResult(
                prediction=prediction,
                preprocess_s=preprocess_s,
                model_s=model_s,
                postprocess_s=time.perf_counter() - post_started,
                batch_size=len(group),
                cpu_s=work[position],  # its work for now; run() turns it into seconds
                gpu_s=model_s * work[position] / total_work if self.on_gpu else 0.0,
                batch=call,
            )

    def _stack(self, name: str, arrays: list[np.ndarray]) -> np.ndarray:
        """Stack one tensor of a group, padding its last axis to the longest item if allowed."""
        pad = self.wiring.pad_values.get(name)
        if pad is None:
            # One item: the copy with a batch axis that np.stack makes, at a tenth of its cost.
            return arrays[0][np.newaxis].copy() if len(arrays) == 1 else np.stack(arrays)
        longest = max(a.shape[-1] for a in arrays)
        batch = np.full((len(arrays), *arrays[0].shape[:-1], longest), pad, arrays[0].dtype)
        for row, array in enumerate(arrays):
            batch[row, ..., : array.shape[-1]] = array
        return batch

    def _predict(self, outputs: dict[str, np.ndarray], context: dict[str, Any]) -> Prediction:
        postprocess = self.wiring.postprocess
        if postprocess is not None:
            return postprocess.run(outputs, context)
        return Prediction(fields={n: v.tolist() for n, v in outputs.items()}, tensors=outputs)

    def _own_error(self, error: Exception, stage: str) -> InferdError:
        if isinstance(error, InferdError):
            return error
        logger.exception("model %r: %s failed on one item", self.name, stage)
        return ModelError(f"model {self.name!r}: {stage} failed: {error}")


def _work(item: Item) -> int:
    """An item's share of the work: the elements of its model inputs (a longer text or a
    bigger image costs more); at least 1."""
    return max(1, sum(v.size for v in item.values.values() if isinstance(v, np.ndarray)))


class _NoBatchDimension(ValueError):
    """The model's outputs do not have the batch size: its fault, not one item's."""


def _share_cpu(results: list[ItemResult | BaseException], cpu_s: float) -> None:
    """Share a batch's CPU seconds out to its answered items by their work (set in
    `_run_group` as `cpu_s`); failed items cost nothing."""
    answered = [r for r in results if isinstance(r, ItemResult)]
    total = sum(r.cpu_s for r in answered)
    for result in answered:
        result.cpu_s = cpu_s * result.cpu_s / total if total else 0.0
