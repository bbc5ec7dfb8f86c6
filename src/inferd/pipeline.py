"""`Pipeline`: the six stages for one model version, built from its ModelSpec.

    1 decode       wire tensors (V2) or instances (V1) → items, validated against the spec
    2 preprocess   per item (image, tabular, ...)
    3 model        the batch: items with equal tensor shapes are stacked and run together
    4 predict      raw outputs split back per item
    5 postprocess  per item (classify, regress, ...)
    6 decide       (rules over predictions; a later stage)

Stages 2-5 run in a batch worker thread (`run_batch`), so the event loop only decodes and
encodes. Every item's failure is its own: `run_batch` returns an exception in its place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inferd.backends import Backend
from inferd.codecs import InferTensor
from inferd.errors import InferdError, ModelError, SpecError
from inferd.spec import (
    AudioStage,
    ClassifyStage,
    DetectStage,
    ForecastStage,
    ImageStage,
    ModelSpec,
    SeriesStage,
    TabularStage,
    TensorSpec,
    TextStage,
)
from inferd.stages import (
    CONTEXT,
    NOTES,
    Item,
    Postprocess,
    Prediction,
    Preprocess,
    audio,
    classify,
    detect,
    forecast,
    image,
    regress,
    series,
    tabular,
    text,
)
from inferd.stages.decide import Rules
from inferd.stages.decode import InputDecoder

logger = logging.getLogger("inferd.pipeline")


@dataclass
class ItemResult:
    """One item's prediction and how long each stage took for it (seconds)."""

    prediction: Prediction
    preprocess_s: float
    model_s: float
    postprocess_s: float
    batch_size: int


def _strip_batch(tensors: list[TensorSpec]) -> list[TensorSpec]:
    return [t.model_copy(update={"shape": t.shape[1:]}) for t in tensors]


def _stack_padded(arrays: list[np.ndarray], pad: Any) -> np.ndarray:
    """Stack per-item arrays whose first axis differs, padding each to the longest."""
    longest = max(a.shape[0] for a in arrays)
    batch = np.full((len(arrays), longest, *arrays[0].shape[1:]), pad, dtype=arrays[0].dtype)
    for row, array in enumerate(arrays):
        batch[row, : array.shape[0]] = array
    return batch


def _as_batch_of_one(value: np.ndarray) -> np.ndarray:
    """`np.stack([value])` without the copy: a view with a leading axis of 1."""
    return value[np.newaxis] if isinstance(value, np.ndarray) else np.stack([value])


class Pipeline:
    """Decode, preprocess, run, postprocess for one model version; thread-safe."""

    def __init__(
        self,
        spec: ModelSpec,
        backend: Backend,
        labels: list[str] | None = None,
        model_dir: Path | None = None,
        trust_code: bool = False,
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.labels = labels
        self.model_dir = model_dir
        self._pad_values: dict[str, float] = {}
        """Model inputs whose last axis varies per item, padded with this value per batch."""
        self.batched = spec.batched
        model_inputs = _strip_batch(backend.inputs) if self.batched else backend.inputs
        self.inputs: list[TensorSpec] = list(spec.inputs) or model_inputs
        self.decoder = InputDecoder(self.inputs, self.batched)
        self._input_by_name = {t.name: t for t in self.inputs}
        self._model_input_names = [t.name for t in backend.inputs]
        self._preprocess = [self._build_preprocess(stage) for stage in spec.preprocess]
        self._check_wire_reaches_model()
        self._postprocess = self._build_postprocess(labels)
        if self._postprocess is not None:
            self.outputs = self._postprocess.outputs
        else:
            declared = list(spec.outputs) or backend.outputs
            self.outputs = _strip_batch(declared) if self.batched and not spec.outputs else declared
        self.rules = (
            Rules(spec, labels, self.inputs, model_dir, trust_code) if spec.decide else None
        )
        """Stage 6, decide; run by the DataPlane, which has the request's parameters."""

    # --- building -----------------------------------------------------------------------

    def _only(self, names: list[str], what: str, key: str) -> str:
        if len(names) != 1:
            raise SpecError(
                f"model {self.spec.name!r}: {what} has {len(names)} candidates "
                f"({', '.join(names)}); name one with `{key}:`"
            )
        return names[0]

    def _model_input(self, declared: str | None, stage: str) -> str:
        name = declared or self._only(
            self._model_input_names, f"the {stage} stage's output", "output"
        )
        if self.spec.backend == "onnx" and name not in self._model_input_names:
            raise SpecError(
                f"model {self.spec.name!r}: the {stage} stage writes {name!r} but the model's "
                f"inputs are {', '.join(self._model_input_names)}"
            )
        return name

    def _wire_input(self, declared: str | None, stage: str) -> str:
        source = declared or self._only(
            list(self._input_by_name), f"the {stage} stage's input", "input"
        )
        if source not in self._input_by_name:
            raise SpecError(
                f"model {self.spec.name!r}: the {stage} stage reads {source!r}, which is not "
                f"one of the declared inputs ({', '.join(self._input_by_name)})"
            )
        return source

    def _build_preprocess(
        self, stage: ImageStage | TabularStage | SeriesStage | TextStage | AudioStage
    ) -> Preprocess:
        if isinstance(stage, TextStage):
            source = self._wire_input(stage.input, "text")
            for target in stage.outputs.values():
                self._model_input(target, "text")
            step, pads = text.build(stage, source, self.model_dir)
            self._pad_values.update(pads)
            return step
        if isinstance(stage, ImageStage):
            source = self._wire_input(stage.input, "image")
            return image.build(stage, source, self._model_input(stage.output, "image"))
        if isinstance(stage, AudioStage):
            source = self._wire_input(stage.input, "audio")
            target = self._model_input(stage.output, "audio")
            self._pad_values.update(audio.pad_values(stage, target))
            return audio.build(stage, source, target)
        if isinstance(stage, SeriesStage):
            source = self._wire_input(stage.input, "series")
            return series.build(stage, source, self._model_input(stage.output, "series"))
        return tabular.build(stage, self._model_input(stage.output, "tabular"))

    def _check_wire_reaches_model(self) -> None:
        """Without stages, declared wire inputs feed the graph directly: names must match."""
        if self._preprocess or self.spec.backend != "onnx":
            return
        wire = set(self._input_by_name)
        graph = set(self._model_input_names)
        if wire != graph:
            raise SpecError(
                f"model {self.spec.name!r}: model.yaml declares inputs "
                f"{', '.join(sorted(wire))} but the graph's inputs are "
                f"{', '.join(sorted(graph))}; rename them or add a preprocess stage"
            )

    def _build_postprocess(self, labels: list[str] | None) -> Postprocess | None:
        if not self.spec.postprocess:
            return None
        stage = self.spec.postprocess[0]
        if isinstance(stage, DetectStage):
            self._model_output(stage.boxes, stage.type)
            self._model_output(stage.scores, stage.type)
            return self._build_detect(stage, labels)
        name = self._model_output(stage.output, stage.type)
        if isinstance(stage, ClassifyStage):
            return classify.build(stage, name, labels)
        if isinstance(stage, ForecastStage):
            return forecast.build(stage, name)
        return regress.build(stage, name)

    def _model_output(self, declared: str | None, stage: str) -> str:
        output_names = [t.name for t in self.backend.outputs]
        name = declared or output_names[0]
        if self.spec.backend == "onnx" and name not in output_names:
            raise SpecError(
                f"model {self.spec.name!r}: the {stage} stage reads output {name!r} but "
                f"the model's outputs are {', '.join(output_names)}"
            )
        return name

    def _build_detect(self, stage: DetectStage, labels: list[str] | None) -> Postprocess:
        """Detections are mapped back through the geometry of the image stage that fed them."""
        images = {
            s.input or self._only(list(self._input_by_name), "image", "input"): s
            for s in self.spec.preprocess
            if isinstance(s, ImageStage)
        }
        source = stage.image_input or (next(iter(images)) if len(images) == 1 else None)
        if stage.image_input is None and len(images) > 1:
            raise SpecError(
                f"model {self.spec.name!r}: the detect stage could follow any of the image "
                f"inputs {', '.join(images)}; name one with `image_input:`"
            )
        if source is not None and source not in images:
            raise SpecError(
                f"model {self.spec.name!r}: the detect stage's image_input {source!r} is not "
                "the input of an image stage"
            )
        if source is None and stage.normalized:
            raise SpecError(
                f"model {self.spec.name!r}: normalized boxes need an image stage to give "
                "the model input's size"
            )
        size = images[source].size if source is not None else (1, 1)
        return detect.build(stage, labels, source, size)

    # --- stage 1: decode (see stages/decode.py) ------------------------------------------

    def items_from_tensors(self, tensors: Sequence[InferTensor]) -> list[Item]:
        """V2 input tensors → items (split along the batch dimension when the model batches)."""
        return self.decoder.items_from_tensors(tensors)

    def item_from_instance(self, instance: Any) -> Item:
        """A V1 instance → one item."""
        return self.decoder.item_from_instance(instance)

    # --- stages 2-5 (in a worker thread) -------------------------------------------------

    def run_batch(self, items: Sequence[Item]) -> list[ItemResult | BaseException]:
        """Preprocess each item, run the model on stacked groups, postprocess each item."""
        results: list[ItemResult | BaseException | None] = [None] * len(items)
        prepared: list[tuple[int, Item, float]] = []
        notes: dict[int, dict[str, Any]] = {}
        contexts: dict[int, dict[str, Any]] = {}
        for index, item in enumerate(items):
            started = time.perf_counter()
            try:
                for stage in self._preprocess:
                    item = stage(item)
                if NOTES in item or CONTEXT in item:
                    item = dict(item)
                    notes[index] = item.pop(NOTES, {})
                    contexts[index] = item.pop(CONTEXT, {})
                self._check_model_inputs(item)
            except Exception as error:
                results[index] = self._own_error(error, "preprocessing")
                continue
            prepared.append((index, item, time.perf_counter() - started))

        for group in self._groups(prepared):
            self._run_group(group, results, contexts)
        for index, note in notes.items():
            result = results[index]
            if isinstance(result, ItemResult) and note:
                result.prediction.parameters.update(note)
        return [r if r is not None else ModelError("item was not processed") for r in results]

    def _check_model_inputs(self, item: Item) -> None:
        if self.spec.backend == "onnx":
            missing = [n for n in self._model_input_names if n not in item]
            if missing:
                raise SpecError(
                    f"model {self.spec.name!r}: no stage produces model input(s) "
                    f"{', '.join(missing)}; check the preprocess stages in model.yaml"
                )

    def _groups(
        self, prepared: list[tuple[int, Item, float]]
    ) -> list[list[tuple[int, Item, float]]]:
        """Items whose tensors have equal shapes and dtypes can share one model call
        (the last axis of padded tensors, such as token ids, may differ)."""
        if not self.batched:
            return [[entry] for entry in prepared]
        pads = self._pad_values
        groups: dict[tuple[Any, ...], list[tuple[int, Item, float]]] = {}
        for entry in prepared:
            key = tuple(
                (name, value.shape[:-1] if name in pads else value.shape, value.dtype.str)
                for name, value in sorted(entry[1].items())
                if isinstance(value, np.ndarray)
            )
            groups.setdefault(key, []).append(entry)
        return list(groups.values())

    def _run_group(
        self,
        group: list[tuple[int, Item, float]],
        results: list[ItemResult | BaseException | None],
        contexts: dict[int, dict[str, Any]],
    ) -> None:
        names = [n for n in group[0][1] if isinstance(group[0][1][n], np.ndarray)]
        started = time.perf_counter()
        try:
            if self.batched:
                feed = {n: self._stack(n, [entry[1][n] for entry in group]) for n in names}
            else:
                feed = {n: group[0][1][n] for n in names}
            outputs = self.backend.run(feed)
            if self.batched:
                bad = [n for n, v in outputs.items() if v.ndim == 0 or v.shape[0] != len(group)]
                if bad:
                    raise ValueError(
                        f"output(s) {', '.join(bad)} do not have the batch size {len(group)} "
                        "as their first dimension"
                    )
        except Exception as error:
            logger.exception("model %r failed on a batch of %d", self.spec.name, len(group))
            failure = ModelError(f"model {self.spec.name!r} failed while running: {error}")
            for index, _, _ in group:
                results[index] = failure
            return
        model_s = time.perf_counter() - started
        for position, (index, _, preprocess_s) in enumerate(group):
            item_outputs = {n: v[position] for n, v in outputs.items()} if self.batched else outputs
            post_started = time.perf_counter()
            try:
                prediction = self._predict(item_outputs, contexts.get(index, {}))
            except Exception as error:
                results[index] = self._own_error(error, "postprocessing")
                continue
            results[index] = ItemResult(
                prediction=prediction,
                preprocess_s=preprocess_s,
                model_s=model_s,
                postprocess_s=time.perf_counter() - post_started,
                batch_size=len(group),
            )

    def _stack(self, name: str, arrays: list[np.ndarray]) -> np.ndarray:
        """Stack one tensor of a group, padding its last axis to the longest item if allowed."""
        pad = self._pad_values.get(name)
        if pad is None:
            return np.stack(arrays)
        longest = max(a.shape[-1] for a in arrays)
        batch = np.full((len(arrays), *arrays[0].shape[:-1], longest), pad, arrays[0].dtype)
        for row, array in enumerate(arrays):
            batch[row, ..., : array.shape[-1]] = array
        return batch

    def _predict(self, outputs: dict[str, np.ndarray], context: dict[str, Any]) -> Prediction:
        if self._postprocess is not None:
            return self._postprocess.run(outputs, context)
        return Prediction(fields={n: v.tolist() for n, v in outputs.items()}, tensors=outputs)

    def _own_error(self, error: Exception, stage: str) -> InferdError:
        if isinstance(error, InferdError):
            return error
        logger.exception("model %r: %s failed on one item", self.spec.name, stage)
        return ModelError(f"model {self.spec.name!r}: {stage} failed: {error}")

    # --- V2 outputs ---------------------------------------------------------------------

    def tensors_from_predictions(self, predictions: Sequence[Prediction]) -> dict[str, np.ndarray]:
        """Per-item prediction tensors → V2 output tensors (stacked when the model batches)."""
        if not self.batched:
            return dict(predictions[0].tensors)
        names = list(predictions[0].tensors)
        ragged = self._postprocess.ragged if self._postprocess is not None else {}
        if len(predictions) == 1 and not ragged:
            return {n: _as_batch_of_one(v) for n, v in predictions[0].tensors.items()}
        try:
            return {
                n: _stack_padded([p.tensors[n] for p in predictions], ragged[n])
                if n in ragged
                else np.stack([p.tensors[n] for p in predictions])
                for n in names
            }
        except ValueError as error:
            raise ModelError(
                f"model {self.spec.name!r}: outputs of different shapes cannot be returned as "
                f"one V2 tensor ({error}); use the V1 API or send one item per request"
            ) from None

    # --- in-process use (inferd predict / evaluate) -----------------------------------------

    def predict_instances(self, instances: Sequence[Any]) -> list[Prediction | InferdError]:
        """Run V1 instances without a server, in batches of the model's size."""
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
