"""Building a model's stages from its ModelSpec, with every name checked against the graph.

A spec names wire inputs, stage inputs and outputs, and model tensors; a typo found here is a
SpecError at load time that says which name to fix, never a KeyError on the first request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferd.backends import Backend
from inferd.errors import SpecError
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
    Postprocess,
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


def strip_batch(tensors: list[TensorSpec]) -> list[TensorSpec]:
    return [t.model_copy(update={"shape": t.shape[1:]}) for t in tensors]


class Wiring:
    """The stages of one model version, built once: wire inputs, preprocess steps (and the pad
    value of each tensor they write whose last axis varies), postprocess and wire outputs."""

    def __init__(
        self, spec: ModelSpec, backend: Backend, labels: list[str] | None, model_dir: Path | None
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.model_dir = model_dir
        self.pad_values: dict[str, float] = {}
        """Model inputs whose last axis varies per item, padded with this value per batch."""
        model_inputs = strip_batch(backend.inputs) if spec.batched else backend.inputs
        self.inputs: list[TensorSpec] = list(spec.inputs) or model_inputs
        self._input_by_name = {t.name: t for t in self.inputs}
        self.model_input_names = [t.name for t in backend.inputs]
        self.preprocess: list[Preprocess] = [self._build_preprocess(s) for s in spec.preprocess]
        self._check_wire_reaches_model()
        self.postprocess = self._build_postprocess(labels)
        if self.postprocess is not None:
            self.outputs = self.postprocess.outputs
        else:
            declared = list(spec.outputs) or backend.outputs
            self.outputs = strip_batch(declared) if spec.batched and not spec.outputs else declared

    def _only(self, names: list[str], what: str, key: str) -> str:
        if len(names) != 1:
            raise SpecError(
                f"model {self.spec.name!r}: {what} has {len(names)} candidates "
                f"({', '.join(names)}); name one with `{key}:`"
            )
        return names[0]

    def _model_input(self, declared: str | None, stage: str) -> str:
        name = declared or self._only(
            self.model_input_names, f"the {stage} stage's output", "output"
        )
        if self.spec.backend == "onnx" and name not in self.model_input_names:
            raise SpecError(
                f"model {self.spec.name!r}: the {stage} stage writes {name!r} but the model's "
                f"inputs are {', '.join(self.model_input_names)}"
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
            self.pad_values.update(pads)
            return step
        if isinstance(stage, ImageStage):
            source = self._wire_input(stage.input, "image")
            return image.build(stage, source, self._model_input(stage.output, "image"))
        if isinstance(stage, AudioStage):
            source = self._wire_input(stage.input, "audio")
            target = self._model_input(stage.output, "audio")
            self.pad_values.update(audio.pad_values(stage, target))
            return audio.build(stage, source, target)
        if isinstance(stage, SeriesStage):
            source = self._wire_input(stage.input, "series")
            return series.build(stage, source, self._model_input(stage.output, "series"))
        return tabular.build(stage, self._model_input(stage.output, "tabular"))

    def _check_wire_reaches_model(self) -> None:
        """Without stages, declared wire inputs feed the graph directly: names must match."""
        if self.preprocess or self.spec.backend != "onnx":
            return
        wire = set(self._input_by_name)
        graph = set(self.model_input_names)
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

    @property
    def ragged(self) -> dict[str, Any]:
        """Outputs whose first axis varies per item, and the value that pads them."""
        return self.postprocess.ragged if self.postprocess is not None else {}
