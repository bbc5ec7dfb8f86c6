"""`ModelSpec`: one model's model.yaml, validated with errors that say how to fix them.

The spec describes the model's *wire* interface (what clients send and get back), the stages
that turn wire inputs into model tensors and model outputs into predictions, and how the
model is batched, run and evaluated. Stage parameters live here too, so a typo anywhere in
model.yaml is caught when the file is read, never mid-request.

One module per section of model.yaml (`tensors`, `preprocess`, `postprocess`, `serving`,
`scale`, `generation`, `evaluation`, `decide`, `monitoring`, `variants`, `cascade`), the root in
`model` and reading the file in `loading`; everything is importable from `inferd.spec`.
"""

from inferd.spec.base import ModelFile
from inferd.spec.cascade import CascadeSpec
from inferd.spec.decide import ActionSpec, DecideRule, LogAction, PythonAction, WebhookAction
from inferd.spec.environment import Environment
from inferd.spec.evaluation import EvalSpec, PredictionLogSpec
from inferd.spec.generation import GenerationSpec
from inferd.spec.loading import load_labels, load_spec, parse_spec
from inferd.spec.model import ModelSpec, Task
from inferd.spec.monitoring import AlertSpec, FairnessSpec, MonitoringSpec, SloSpec
from inferd.spec.postprocess import (
    ClassifyStage,
    DetectStage,
    ForecastStage,
    PostprocessStage,
    RegressStage,
)
from inferd.spec.preprocess import (
    AudioStage,
    ImageStage,
    PreprocessStage,
    SeriesStage,
    TabularStage,
    TextStage,
    TokenTensor,
)
from inferd.spec.scale import ScaleSpec
from inferd.spec.serving import BatchingSpec, PythonSpec, RuntimeSpec
from inferd.spec.tensors import TensorSpec
from inferd.spec.variants import VariantSpec

__all__ = [
    "ActionSpec",
    "AlertSpec",
    "AudioStage",
    "BatchingSpec",
    "CascadeSpec",
    "ClassifyStage",
    "DecideRule",
    "DetectStage",
    "Environment",
    "EvalSpec",
    "FairnessSpec",
    "ForecastStage",
    "GenerationSpec",
    "ImageStage",
    "LogAction",
    "ModelFile",
    "ModelSpec",
    "MonitoringSpec",
    "PostprocessStage",
    "PredictionLogSpec",
    "PreprocessStage",
    "PythonAction",
    "PythonSpec",
    "RegressStage",
    "RuntimeSpec",
    "ScaleSpec",
    "SeriesStage",
    "SloSpec",
    "TabularStage",
    "Task",
    "TensorSpec",
    "TextStage",
    "TokenTensor",
    "VariantSpec",
    "WebhookAction",
    "load_labels",
    "load_spec",
    "parse_spec",
]
