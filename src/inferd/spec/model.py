"""`ModelSpec`, the root of model.yaml: its sections together, and the checks that span
several of them (a task's postprocess stage, the inputs decide rules and the log read)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from inferd.spec.base import ModelFile, _inside_model_folder, _Strict
from inferd.spec.cascade import CascadeSpec
from inferd.spec.decide import DecideRule
from inferd.spec.evaluation import EvalSpec, PredictionLogSpec
from inferd.spec.generation import GenerationSpec
from inferd.spec.monitoring import AlertSpec, FairnessSpec, MonitoringSpec, SloSpec
from inferd.spec.postprocess import PostprocessStage
from inferd.spec.preprocess import PreprocessStage
from inferd.spec.scale import ScaleSpec
from inferd.spec.serving import BatchingSpec, PythonSpec, RuntimeSpec
from inferd.spec.tensors import TensorSpec
from inferd.spec.variants import VariantSpec

Task = Literal["classification", "regression", "detection", "forecasting", "generation", "tensor"]


_POSTPROCESS_FOR_TASK = {
    "classification": "classify",
    "regression": "regress",
    "forecasting": "forecast",
    "detection": "detect",
}


_MEMBERS_OWN = {
    "backend",
    "artifact",
    "inputs",
    "outputs",
    "preprocess",
    "postprocess",
    "batching",
    "runtime",
    "scale",
    "python",
    "generation",
    "versions",
    "recipe",
    "variants",
}
"""Sections a cascade's model.yaml must leave out: they belong to its members."""


class ModelSpec(_Strict):
    """A model as model.yaml describes it."""

    name: str
    task: Task = "tensor"
    backend: Literal["onnx", "python", "torch"] = "onnx"
    artifact: ModelFile | None = None
    """File inside each version folder (default: model.onnx for onnx)."""
    description: str = ""
    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)
    preprocess: list[PreprocessStage] = Field(default_factory=list)
    postprocess: list[PostprocessStage] = Field(default_factory=list)
    labels: list[str] | str | None = None
    """A list of class names, or a file (relative to the model folder) with one per line."""
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    scale: ScaleSpec = Field(default_factory=ScaleSpec)
    """Replicas under `inferd serve --engine ray` (one Ray Serve deployment per version)."""
    eval: EvalSpec | None = None
    python: PythonSpec | None = None
    generation: GenerationSpec | None = None
    versions: Literal["latest", "all"] | list[int] = "latest"
    decide: list[DecideRule] = Field(default_factory=list)
    """Rules over each prediction: decisions for the response and actions to carry out."""
    prediction_log: PredictionLogSpec | None = None
    """Log predictions to the store (for feedback and monitoring); off when absent."""
    recipe: str | None = None
    """The Python module (e.g. examples.digits.recipe) that builds, trains and exports this
    model: what `inferd optimize --prune/--distill` retrain through. Imported only by them."""
    variants: dict[int, VariantSpec] = Field(default_factory=dict)
    """How `inferd optimize` made each of its versions (written by it, keyed by version)."""
    slo: SloSpec | None = None
    """The latency objective its requests are counted against (attainment metrics)."""
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    """The window and label counts of its live figures (accuracy, fairness, drift)."""
    fairness: FairnessSpec | None = None
    """Sensitive attributes (logged inputs) its fairness is measured over."""
    alerts: list[AlertSpec] = Field(default_factory=list)
    """Thresholds on its live figures that fire actions."""
    cascade: CascadeSpec | None = None
    """Serve `first` and send the items it is unsure of on to `then` (a model of its own,
    without version folders: its inputs, stages and batching are its members')."""

    @field_validator("labels")
    @classmethod
    def _labels_file_inside(cls, value: list[str] | str | None) -> list[str] | str | None:
        return _inside_model_folder(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.cascade is not None:
            return self._check_cascade(self.cascade)
        names = [t.name for t in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError("input names must be unique")
        needed = _POSTPROCESS_FOR_TASK.get(self.task)
        if needed is not None and not any(s.type == needed for s in self.postprocess):
            raise ValueError(f'task "{self.task}" needs a postprocess stage of type "{needed}"')
        if len(self.postprocess) > 1:
            raise ValueError("give at most one postprocess stage")
        if self.preprocess and not self.inputs:
            raise ValueError("a model with preprocess stages must declare its wire `inputs`")
        if self.backend == "python" and (not self.inputs or not self.outputs):
            raise ValueError("a python-backend model must declare its `inputs` and `outputs`")
        decisions = [rule.decision for rule in self.decide]
        if len(set(decisions)) != len(decisions):
            raise ValueError("decide: each rule needs its own decision name")
        if self.decide and self.task not in _POSTPROCESS_FOR_TASK:
            raise ValueError(
                f'decide rules need a prediction to read: task "{self.task}" has none '
                f"(use one of {', '.join(_POSTPROCESS_FOR_TASK)})"
            )
        self._check_monitoring(names)
        if self.prediction_log is not None and isinstance(self.prediction_log.inputs, list):
            unknown = set(self.prediction_log.inputs) - set(names)
            if unknown:
                raise ValueError(
                    f"prediction_log.inputs names unknown inputs {sorted(unknown)}; "
                    f"the inputs are {names}"
                )
        if (self.task == "generation") != (self.backend == "torch"):
            raise ValueError(
                'task "generation" runs on backend "torch" (the generation engine), and only it'
            )
        return self

    def _check_monitoring(self, names: list[str]) -> None:
        """Fairness reads the prediction log's inputs; alerts need unique names."""
        alerts = [alert.name for alert in self.alerts]
        if len(set(alerts)) != len(alerts):
            raise ValueError("alerts: each alert needs its own name")
        fairness = self.fairness
        if fairness is None:
            return
        if self.task not in ("classification", "regression"):
            raise ValueError(
                f"fairness compares groups' predictions of a classifier or a regressor, not "
                f'of task "{self.task}"'
            )
        if self.prediction_log is None:
            raise ValueError(
                "fairness reads the sensitive attributes from the prediction log; add "
                "prediction_log: {inputs: all}"
            )
        logged = self.prediction_log.inputs
        kept = names if logged == "all" else [] if logged == "none" else logged
        missing = [a for a in fairness.attributes if a not in kept]
        if missing:
            raise ValueError(
                f"fairness.attributes {missing} are not logged inputs of this model "
                f"(the logged inputs are {kept}); declare them as inputs and log them"
            )
        if self.task == "regression" and fairness.metric != "mae":
            raise ValueError('fairness.metric of a regressor is "mae"')
        if self.task == "classification" and fairness.metric == "mae":
            raise ValueError("fairness.metric mae is for a regressor; use accuracy, f1, ...")

    def _check_cascade(self, cascade: CascadeSpec) -> ModelSpec:
        """A cascade runs its members' stages through their batchers: it has none of its own."""
        own = sorted(self.model_fields_set & _MEMBERS_OWN)
        if own:
            raise ValueError(
                f"a cascade takes {', '.join(own)} from its members "
                f"({cascade.first!r}, {cascade.then!r}); remove them from its model.yaml"
            )
        if self.name in (cascade.first, cascade.then):
            raise ValueError(f"cascade {self.name!r} names itself as a member")
        decisions = [rule.decision for rule in self.decide]
        if len(set(decisions)) != len(decisions):
            raise ValueError("decide: each rule needs its own decision name")
        return self

    @property
    def max_batch_size(self) -> int:
        return self.batching.max_batch_size

    @property
    def batched(self) -> bool:
        """True when tensors carry a leading batch dimension that requests may stack."""
        return self.batching.max_batch_size > 0

    def artifact_name(self) -> str:
        if self.artifact:
            return self.artifact
        if self.backend == "python":
            return (self.python or PythonSpec()).module
        if self.backend == "torch":
            return "config.json"
        return "model.onnx"
