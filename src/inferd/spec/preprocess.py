"""The `preprocess:` stages of model.yaml: how a wire input (an image file, named features, a
series, a sound file, a text) becomes the tensor the model takes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from inferd.spec.base import ModelFile, _one_per, _Strict


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
    max_pixels: int = Field(default=4096 * 4096, ge=1, le=89_478_485)
    """Refuse images larger than this before decoding them (decompression bombs): 16.8 MP
    (4096 x 4096, 48 MiB as RGB) by default, at most Pillow's own guard (89.5 MP), which
    stays on."""

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
    categories: dict[str, list[str]] = Field(default_factory=dict)
    """Text features and their values: each is coded as its value's position in the list
    (then scaled like the others), e.g. {group: [A, B]} sends A as 0 and B as 1."""

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

    @field_validator("categories")
    @classmethod
    def _known_features(
        cls, categories: dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        features = info.data.get("features") or []
        for name, values in categories.items():
            if name not in features:
                raise ValueError(f"categories names {name!r}, which is not one of the features")
            if not values or len(set(values)) != len(values):
                raise ValueError(f"categories of {name!r} must be a list of distinct values")
        return categories


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
