"""`ModelSpec`: one model's model.yaml, validated with errors that say how to fix them.

The spec describes the model's *wire* interface (what clients send and get back), the stages
that turn wire inputs into model tensors and model outputs into predictions, and how the
model is batched, run and evaluated. Stage parameters live here too, so a typo anywhere in
model.yaml is caught when the file is read, never mid-request.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from inferd.datatypes import DATATYPES
from inferd.errors import SpecError

Task = Literal["classification", "regression", "detection", "forecasting", "generation", "tensor"]


def _inside_model_folder(value: str) -> str:
    """Paths in model.yaml name files of the model folder, never files elsewhere."""
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not value.strip():
        raise ValueError(
            f"{value!r} must be a path inside the model folder (no '..', not absolute)"
        )
    return value


ModelFile = Annotated[str, AfterValidator(_inside_model_folder)]
"""A file named in model.yaml, relative to the model (or version) folder."""


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """A named tensor. `shape` is per item (no batch dimension) when the model batches."""

    name: str
    datatype: str
    shape: list[int] = Field(default_factory=lambda: [-1])

    @field_validator("datatype")
    @classmethod
    def _known_datatype(cls, value: str) -> str:
        upper = value.upper()
        if upper not in DATATYPES:
            raise ValueError(f"unknown datatype {value!r}; use one of {', '.join(DATATYPES)}")
        return upper

    @field_validator("shape")
    @classmethod
    def _valid_dims(cls, value: list[int]) -> list[int]:
        if any(dim < -1 or dim == 0 for dim in value):
            raise ValueError(f"shape {value}: each dimension is a positive size or -1 (any size)")
        return value


# --- preprocessing stages -------------------------------------------------------------------


class ImageStage(_Strict):
    """Decode an image file and turn it into the tensor a vision model expects."""

    type: Literal["image"]
    input: str | None = None
    """The wire input holding the encoded image (default: the only input)."""
    output: str | None = None
    """The model tensor it feeds (default: the model's only input)."""
    color: Literal["L", "RGB", "BGR"] = "RGB"
    size: tuple[int, int]
    """[width, height] the image is resized to."""
    resample: Literal["nearest", "bilinear", "bicubic", "lanczos", "box"] = "bilinear"
    keep_aspect: bool = False
    """Letterbox: keep the aspect ratio and pad with `pad_value` instead of stretching."""
    pad_value: int = 0
    invert: bool | Literal["auto"] = False
    """Invert intensities; "auto" inverts when the border is light (dark ink on white paper)."""
    scale: float = 1.0 / 255.0
    mean: list[float] = Field(default_factory=lambda: [0.0])
    std: list[float] = Field(default_factory=lambda: [1.0])
    layout: Literal["CHW", "HWC", "HW"] = "CHW"
    datatype: Literal["FP32", "FP16", "UINT8"] = "FP32"
    max_pixels: int = 64_000_000
    """Refuse images larger than this before decoding them (decompression bombs)."""

    @field_validator("mean", "std")
    @classmethod
    def _per_channel(cls, values: list[float], info: ValidationInfo) -> list[float]:
        channels = 1 if info.data.get("color") == "L" else 3
        if len(values) not in (1, channels):
            allowed = "1" if channels == 1 else f"1 or {channels} (one per channel)"
            raise ValueError(f"{info.field_name} has {len(values)} values; give {allowed}")
        if info.field_name == "std" and any(v == 0 for v in values):
            raise ValueError("std must not contain 0")
        return values

    @model_validator(mode="after")
    def _check(self) -> ImageStage:
        if self.size[0] <= 0 or self.size[1] <= 0:
            raise ValueError("size is [width, height], both positive")
        if self.layout == "HW" and self.color != "L":
            raise ValueError('layout "HW" has no channel axis: use it only with color "L"')
        return self


class TabularStage(_Strict):
    """Named numeric features, in declared order, scaled, into one feature vector."""

    type: Literal["tabular"]
    features: list[str]
    output: str | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    datatype: Literal["FP32", "FP64"] = "FP32"

    @field_validator("features")
    @classmethod
    def _named(cls, features: list[str]) -> list[str]:
        if not features:
            raise ValueError("features must name at least one feature")
        if len(set(features)) != len(features):
            raise ValueError("features must be unique")
        return features

    @field_validator("mean", "std")
    @classmethod
    def _per_feature(cls, values: list[float] | None, info: ValidationInfo) -> list[float] | None:
        return _one_per(values, info, "features", "feature")


def _one_per(
    values: list[float] | None, info: ValidationInfo, key: str, what: str
) -> list[float] | None:
    """Check scaling values give one number per named thing (features, outputs)."""
    if values is None:
        return None
    names = info.data.get(key)
    if names is not None and len(values) not in (
        (1, len(names)) if key == "names" else (len(names),)
    ):
        raise ValueError(
            f"{info.field_name} has {len(values)} values but there are {len(names)} {key}; "
            f"give one per {what}"
        )
    if info.field_name == "std" and any(v == 0 for v in values):
        raise ValueError("std must not contain 0")
    return values


class SeriesStage(_Strict):
    """A window of the most recent values of a time series, scaled, for a forecaster."""

    type: Literal["series"]
    input: str | None = None
    """The wire input holding the series, oldest value first (default: the only input)."""
    output: str | None = None
    window: int = Field(ge=1)
    """How many of the latest values the model reads; a shorter series is refused."""
    mean: float = 0.0
    std: float = 1.0
    layout: Literal["W", "W1"] = "W"
    """[window], or [window, 1] for models that want a feature axis."""

    @field_validator("std")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("std must not be 0")
        return value


class AudioStage(_Strict):
    """Decode a sound file into a fixed-rate mono clip and its log-mel spectrogram."""

    type: Literal["audio"]
    input: str | None = None
    """The wire input holding the encoded file: WAV, FLAC, OGG, ... (default: the only input)."""
    output: str | None = None
    """The model tensor it feeds (default: the model's only input)."""
    sample_rate: int = Field(default=16_000, ge=1000)
    """Clips are mixed to mono and resampled (soxr) to this rate."""
    duration_s: float | None = Field(default=None, gt=0)
    """Crop or zero-pad every clip to this length; None keeps each clip's own length."""
    align: Literal["start", "center"] = "start"
    """Where the clip sits in the fixed window when it is cropped or padded."""
    trim_db: float | None = Field(default=None, gt=0)
    """Trim leading/trailing samples quieter than the peak minus this many dB; None: no trim."""
    max_duration_s: float = Field(default=60.0, gt=0)
    """Longer clips are refused (from the file header, before decoding)."""
    silence_db: float | None = Field(default=None, lt=0)
    """Refuse clips whose peak is below this level in dBFS (e.g. -60); None accepts silence."""
    features: Literal["log_mel", "waveform"] = "log_mel"
    n_fft: int = Field(default=400, ge=8)
    hop_length: int = Field(default=160, ge=1)
    win_length: int | None = Field(default=None, ge=2)
    """Hann window length (default n_fft); frames are centred, the clip zero-padded at its ends."""
    n_mels: int = Field(default=40, ge=1)
    f_min: float = Field(default=0.0, ge=0)
    f_max: float | None = Field(default=None, gt=0)
    """Top of the mel filterbank (default: half the sample rate)."""
    mel_scale: Literal["slaney", "htk"] = "slaney"
    top_db: float | None = Field(default=80.0, gt=0)
    """Floor the dB spectrogram this far below its own peak; None: no floor."""
    mean: float = 0.0
    std: float = 1.0
    layout: Literal["MT", "1MT", "TM", "T", "1T"] = "MT"
    """log_mel: [mels, frames], [1, mels, frames] or [frames, mels]; waveform: [T] or [1, T]."""

    @model_validator(mode="after")
    def _check(self) -> AudioStage:
        if self.std == 0:
            raise ValueError("std must not be 0")
        waveform_layouts = ("T", "1T")
        if (self.features == "waveform") != (self.layout in waveform_layouts):
            raise ValueError(
                'layout "T" or "1T" goes with features "waveform"; "MT", "1MT" or "TM" with '
                '"log_mel"'
            )
        if (self.win_length or self.n_fft) > self.n_fft:
            raise ValueError("win_length must not exceed n_fft")
        nyquist = self.sample_rate / 2
        if self.f_max is not None and self.f_max > nyquist:
            raise ValueError(f"f_max {self.f_max} is above half the sample rate ({nyquist})")
        if self.f_min >= (self.f_max or nyquist):
            raise ValueError("f_min must be below f_max")
        if self.duration_s is not None and self.duration_s > self.max_duration_s:
            raise ValueError("duration_s must not exceed max_duration_s")
        if self.duration_s is not None and self.duration_s * self.sample_rate < self.n_fft:
            raise ValueError("duration_s is shorter than one n_fft window at this sample rate")
        return self


TokenTensor = Literal["input_ids", "attention_mask", "token_type_ids"]
_DEFAULT_TOKEN_TENSORS: dict[TokenTensor, str] = {
    "input_ids": "input_ids",
    "attention_mask": "attention_mask",
}


class TextStage(_Strict):
    """Tokenize one text with a Hugging Face `tokenizers` tokenizer.json."""

    type: Literal["text"]
    input: str | None = None
    """The wire input holding the text (default: the only input)."""
    tokenizer: ModelFile = "tokenizer.json"
    """The tokenizer file, relative to the model folder."""
    max_length: int = Field(default=512, ge=1)
    """Longer texts are truncated to this many tokens, and the response says so."""
    outputs: dict[TokenTensor, str] = Field(default_factory=lambda: dict(_DEFAULT_TOKEN_TENSORS))
    """Which token tensors the model takes, and under which input names."""
    pad_id: int | None = None
    """The id batches are padded with (default: the tokenizer's pad token, else 0)."""
    datatype: Literal["INT64", "INT32"] = "INT64"

    @field_validator("outputs")
    @classmethod
    def _needs_ids(cls, value: dict[TokenTensor, str]) -> dict[TokenTensor, str]:
        if "input_ids" not in value:
            raise ValueError("outputs must map input_ids to a model input")
        return value


PreprocessStage = Annotated[
    ImageStage | TabularStage | SeriesStage | TextStage | AudioStage, Field(discriminator="type")
]


# --- postprocessing stages ------------------------------------------------------------------


class ClassifyStage(_Strict):
    """Scores → label, score and top-k with label names."""

    type: Literal["classify"]
    output: str | None = None
    """The model output holding logits or probabilities (default: the first output)."""
    softmax: bool | Literal["auto"] = "auto"
    """"auto" applies softmax unless the scores already look like probabilities."""
    top_k: int = Field(default=5, ge=1)


class RegressStage(_Strict):
    """Raw outputs → named values in the target's own units (inverse scaling)."""

    type: Literal["regress"]
    output: str | None = None
    names: list[str] | None = None
    """Names for the values; one value and no names gives {"value": x}."""
    mean: list[float] | None = None
    std: list[float] | None = None

    @field_validator("mean", "std")
    @classmethod
    def _per_name(cls, values: list[float] | None, info: ValidationInfo) -> list[float] | None:
        return _one_per(values, info, "names", "name")


class ForecastStage(_Strict):
    """Raw outputs → the forecast horizon in the series' own units."""

    type: Literal["forecast"]
    output: str | None = None
    mean: float = 0.0
    std: float = 1.0
    min_value: float | None = None
    """Clip below this (e.g. 0 for counts); None leaves values as they are."""
    max_value: float | None = None


class DetectStage(_Strict):
    """Candidate boxes and class scores → thresholded, NMS-filtered detections in the
    original image's pixel coordinates."""

    type: Literal["detect"]
    boxes: str = "boxes"
    """Model output with [candidates, 4] boxes per image, in the model input's pixels."""
    scores: str = "scores"
    """Model output with [candidates, classes] scores per image (probabilities)."""
    box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy"
    normalized: bool = False
    """Boxes are fractions (0..1) of the model input's width and height, not pixels."""
    image_input: str | None = None
    """The wire image whose resize/letterbox is undone (default: the only image input)."""
    score_threshold: float = Field(default=0.25, ge=0, le=1)
    iou_threshold: float = Field(default=0.5, gt=0, le=1)
    """Non-maximum suppression: of two boxes of one class overlapping more, the lower goes."""
    max_detections: int = Field(default=100, ge=1)


PostprocessStage = Annotated[
    ClassifyStage | RegressStage | ForecastStage | DetectStage, Field(discriminator="type")
]


# --- serving options ------------------------------------------------------------------------


class BatchingSpec(_Strict):
    max_batch_size: int = Field(default=32, ge=0)
    """0 or 1 turns batching off (0 also means the model has no batch dimension)."""
    max_delay_ms: float = Field(default=0.0, ge=0)
    """How long a batch may wait to fill after its first item; 0: start when a worker is free."""
    max_queue: int = Field(default=1024, ge=1)
    """Items that may wait; beyond it requests are refused with 429."""


class RuntimeSpec(_Strict):
    threads: int = Field(default=0, ge=0)
    """Intra-op threads for the backend; 0 lets the runtime choose."""
    device: str = "cpu"
    """cpu, cuda or cuda:N."""
    instances: int = Field(default=1, ge=1)
    """Batches that may run at once (worker threads for this model version)."""


class EvalSpec(_Strict):
    data: ModelFile
    """A JSON-lines file, relative to the model folder: {"instance": ..., "target": ...}."""
    metric: Literal["accuracy", "r2", "mae", "rmse", "mase", "map"]
    threshold: float | None = None
    """The value the metric must reach (at least; at most for mae/rmse/mase)."""
    season: int = Field(default=1, ge=1)
    """For mase: the season length m of the naive forecast that scales the error."""
    iou: float = Field(default=0.5, gt=0, le=1)
    """For map: the overlap a detection needs with a true box to count as a hit."""
    min_recall: dict[str, Annotated[float, Field(ge=0, le=1)]] | None = None
    """For accuracy: class label → the recall that class must reach (e.g. {malignant: 0.93});
    the eval passes only when the threshold and every listed recall are met."""

    @field_validator("min_recall", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        """YAML reads `{3: 0.9}` with an int key; class labels are text ("3")."""
        if isinstance(value, dict):
            return {
                str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v
                for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _recall_needs_classes(self) -> EvalSpec:
        if self.min_recall is not None and self.metric != "accuracy":
            raise ValueError(
                f'min_recall applies to metric "accuracy" (a classifier), not "{self.metric}"'
            )
        if self.min_recall is not None and not self.min_recall:
            raise ValueError("min_recall must name at least one class, or be left out")
        return self


class GenerationSpec(_Strict):
    """How a generation model (task: generation) is served by the continuous-batching engine."""

    max_context: int | None = Field(default=None, ge=2)
    """Prompt plus output tokens of one request (default and ceiling: the checkpoint's)."""
    max_sequences: int = Field(default=16, ge=1)
    """Requests generating at once; each holds one KV-cache slot of max_context tokens."""
    max_tokens_in_flight: int | None = Field(default=None, ge=2)
    """Cache tokens reserved by running requests (prompt + max_tokens each) at most;
    default max_sequences * max_context. A request needing more is refused at once."""
    max_waiting: int = Field(default=256, ge=1)
    """Requests that may wait for a slot; more get 429."""
    max_prefill_tokens: int = Field(default=2048, ge=1)
    """Prompt tokens read in one engine step, so long prompts do not stall running streams."""
    default_max_tokens: int = Field(default=16, ge=1)
    """max_tokens of a request that gives none."""


class PythonSpec(_Strict):
    module: ModelFile = "model.py"
    """File in the version folder; loaded only when serving with --trust-code."""
    class_name: str = Field(default="Model", alias="class")


_DECISION_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


class WebhookAction(_Strict):
    """POST the decision's event as JSON to a URL, retried with backoff until it is taken."""

    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    max_attempts: int = Field(default=10, ge=1, le=1000)
    backoff_s: float = Field(default=1.0, gt=0)
    """Wait before the second attempt; doubled after each failure."""
    max_backoff_s: float = Field(default=300.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")) or len(url) < 10:
            raise ValueError(f"url {url!r} must be an http:// or https:// URL")
        return url


class LogAction(_Strict):
    """A structured log line (logger inferd.actions) for each decision."""

    type: Literal["log"]
    level: Literal["debug", "info", "warning", "error"] = "info"


class PythonAction(_Strict):
    """Call `function(event)` from a .py file of the model folder (only with --trust-code)."""

    type: Literal["python"]
    entry: str
    """"file.py:function", the file relative to the model folder."""

    @field_validator("entry")
    @classmethod
    def _entry(cls, entry: str) -> str:
        file, _, function = entry.partition(":")
        if not file.endswith(".py") or not function.isidentifier():
            raise ValueError(f"entry {entry!r} must look like 'actions.py:function_name'")
        _inside_model_folder(file)
        return entry


ActionSpec = Annotated[WebhookAction | LogAction | PythonAction, Field(discriminator="type")]


class DecideRule(_Strict):
    """When `when` is true for a prediction, the response carries `decision` and its
    actions are recorded in the outbox before the response is sent."""

    decision: str = Field(pattern=_DECISION_NAME)
    when: str
    """An expression over the prediction, the inputs and the request parameters."""
    actions: list[ActionSpec] = Field(default_factory=list)
    description: str = ""


class PredictionLogSpec(_Strict):
    """Which predictions go to the store's prediction log, and what of them is kept."""

    sample_rate: float = Field(default=1.0, ge=0, le=1)
    """Fraction of predictions logged (each item drawn independently)."""
    inputs: Literal["all", "none"] | list[str] = "all"
    """Wire inputs kept with each logged prediction (binary inputs are never kept)."""


_POSTPROCESS_FOR_TASK = {
    "classification": "classify",
    "regression": "regress",
    "forecasting": "forecast",
    "detection": "detect",
}


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
    eval: EvalSpec | None = None
    python: PythonSpec | None = None
    generation: GenerationSpec | None = None
    versions: Literal["latest", "all"] | list[int] = "latest"
    decide: list[DecideRule] = Field(default_factory=list)
    """Rules over each prediction: decisions for the response and actions to carry out."""
    prediction_log: PredictionLogSpec | None = None
    """Log predictions to the store (for feedback and monitoring); off when absent."""

    @field_validator("labels")
    @classmethod
    def _labels_file_inside(cls, value: list[str] | str | None) -> list[str] | str | None:
        return _inside_model_folder(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
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


_STAGE_TAGS = {
    "image",
    "tabular",
    "series",
    "text",
    "audio",
    "classify",
    "regress",
    "forecast",
    "detect",
    "webhook",
    "log",
    "python",
}


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source} is not valid:"]
    for problem in error.errors():
        # Tagged unions put the tag in the path (preprocess.0.image.size): drop it.
        parts = [
            part
            for i, part in enumerate(problem["loc"])
            if not (i and isinstance(problem["loc"][i - 1], int) and part in _STAGE_TAGS)
        ]
        where = ".".join(str(part) for part in parts) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (check its spelling; see the docs for the allowed keys)"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_spec(data: dict[str, Any], source: str = "model.yaml") -> ModelSpec:
    """Validate a model.yaml mapping; raise SpecError listing every problem with its path."""
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_describe(error, source)) from None


def load_spec(model_dir: Path) -> ModelSpec | None:
    """Read model_dir/model.yaml; None when the folder has none (a plain tensor model)."""
    path = model_dir / "model.yaml"
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise SpecError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path} must be a mapping of keys (name, task, backend, ...)")
    data = _with_environment(data, str(path))
    data.setdefault("name", model_dir.name)
    return parse_spec(data, str(path))


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _with_environment(value: Any, source: str) -> Any:
    """Replace `${NAME}` and `${NAME:-default}` in every string value of model.yaml (`$$` is a
    literal `$`). Substitution happens after YAML parsing, so a variable's value is always
    text inside one value and can never add keys to the file."""
    if isinstance(value, dict):
        return {key: _with_environment(item, source) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_environment(item, source) for item in value]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is not None and (found or default is None):
            return found
        if default is not None:
            return default
        raise SpecError(
            f"{source} uses ${{{name}}} but the environment variable {name} is not set; "
            f"set it, or give a default: ${{{name}:-value}}"
        )

    return _VARIABLE.sub(substitute, value)


def load_labels(spec: ModelSpec, model_dir: Path) -> list[str] | None:
    """The class names, from the spec itself or from its labels file."""
    if spec.labels is None:
        return None
    if isinstance(spec.labels, list):
        return spec.labels
    path = model_dir / spec.labels
    if not path.exists():
        raise SpecError(f"labels file {path} does not exist; create it with one label per line")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
