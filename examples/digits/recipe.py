"""The training recipe of the `digits` example: how the CNN is built, fed, trained and
exported. examples/digits/train.py trains the shipped model through it, and `inferd optimize
digits --prune R` fine-tunes a pruned copy through it (model.yaml: `recipe:
examples.digits.recipe`), so both see exactly the same data, augmentation and transform.

The model never sees the 8x8 arrays directly: every image goes through `serving_tensor`, a
copy of what inferd's image stage does with an uploaded file (grey, invert when the border is
light, bilinear resize to 16x16, scale to 0..1). Training images are the digits upscaled to
random sizes with random filters, slightly moved, rotated and rescaled, with random contrast,
sometimes dark-on-light and sometimes JPEG-compressed, so a phone photo or a 64x64 scan of a
digit lands where the training data was.

Needs the `train` extra (torch, onnx, scikit-learn).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from inferd.errors import SpecError
from inferd.optimize.export import Exported, OnnxRecipe, export_onnx
from inferd.optimize.recipe import TrainingSet

SEED = 0
SIZE = 16
EPOCHS = 30
COPIES_PER_EPOCH = 4  # augmented renders of each training digit per epoch
BATCH = 128
LR = 3e-3
WEIGHT_DECAY = 1e-4
LABEL_SMOOTHING = 0.05
WIDTHS = (16, 16, 32, 32, 64)
"""Output channels of the four convolutions, then the hidden neurons of the head."""

ONNX = OnnxRecipe({"image_tensor": np.zeros((2, 1, SIZE, SIZE), np.float32)}, ("logits",))

FILTERS = (
    Image.Resampling.NEAREST,
    Image.Resampling.BILINEAR,
    Image.Resampling.BICUBIC,
    Image.Resampling.LANCZOS,
    Image.Resampling.BOX,
    Image.Resampling.HAMMING,
)

# --- the data and the serving transform ---------------------------------------------------------


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (0..16), split 80/20: train_x, test_x, train_y, test_y."""
    data = load_digits()
    train_x, test_x, train_y, test_y = train_test_split(
        data.images.astype(np.float64),
        data.target,
        test_size=0.2,
        random_state=0,
        stratify=data.target,
    )
    return train_x, test_x, train_y, test_y


def serving_tensor(image: Image.Image) -> np.ndarray:
    """Image → [1, 16, 16] float32, exactly as inferd's image stage does it for model.yaml.

    Grey; invert when the border (outermost rows and columns) is light, i.e. dark ink on
    white paper; bilinear (antialiased) resize to 16x16; scale to 0..1 (mean 0, std 1).
    """
    image = ImageOps.exif_transpose(image).convert("L")
    pixels = np.asarray(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if float(border.mean()) > 127.0:
        image = ImageOps.invert(image)
    pixels = np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    x = pixels.astype(np.float32) * np.float32(1 / 255)
    return ((x - np.float32(0.0)) / np.float32(1.0))[None, :, :]


def tensors(images: Sequence[Image.Image]) -> np.ndarray:
    return np.stack([serving_tensor(image) for image in images])


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def digit_image(digit: np.ndarray) -> Image.Image:
    """An 8x8 digit (values 0..16, light ink on dark) as an 8-bit grey image."""
    return Image.fromarray((digit * 255 / 16).round().astype(np.uint8), "L")


def instance(image: Image.Image) -> dict[str, str]:
    """An image as a V1 client sends it: {"b64": PNG}."""
    return {"b64": base64.b64encode(png_bytes(image)).decode()}


def instance_image(item: Any) -> Image.Image:
    """The image of a wire-form instance: {"b64": ...} or {"image": {"b64": ...}}."""
    if isinstance(item, Mapping) and "image" in item:
        item = item["image"]
    if not isinstance(item, Mapping) or not isinstance(item.get("b64"), str):
        raise SpecError(f'a digits instance is {{"b64": "<PNG or JPEG>"}}; got {item!r:.80}')
    return decode(base64.b64decode(item["b64"]))


def augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random render of one 8x8 digit image: size, filter, pose, contrast, polarity,
    compression."""
    side = int(rng.integers(8, 97))
    width = max(8, round(side * rng.uniform(0.85, 1.15)))
    image = image.resize((width, side), FILTERS[rng.integers(len(FILTERS))])
    if rng.random() < 0.7:
        angle = math.radians(rng.uniform(-12, 12))
        scale = rng.uniform(0.6, 1.1)
        shift_x, shift_y = rng.uniform(-0.09, 0.09, size=2) * (width, side)
        # Inverse map (output pixel → input pixel) of a rotation and scaling about the centre.
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        cx, cy = width / 2, side / 2
        matrix = (
            cos,
            sin,
            cx - cos * (cx + shift_x) - sin * (cy + shift_y),
            -sin,
            cos,
            cy + sin * (cx + shift_x) - cos * (cy + shift_y),
        )
        image = image.transform(
            image.size, Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR, fillcolor=0
        )
    # Paper is not pure black and ink is not pure white.
    low, high = rng.uniform(0, 40), rng.uniform(190, 255)
    pixels = low + np.asarray(image, dtype=np.float32) * ((high - low) / 255)
    if rng.random() < 0.3:
        pixels += rng.normal(0, rng.uniform(2, 10), size=pixels.shape)
    pixels = np.clip(pixels.round(), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        pixels = 255 - pixels
    image = Image.fromarray(pixels, "L")
    if rng.random() < 0.15:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(50, 96)))
        image = decode(buffer.getvalue())
    return image


# --- the model ---------------------------------------------------------------------------------


def conv_block(
    channels_in: int, middle: int, channels_out: int, batchnorm: bool
) -> list[nn.Module]:
    """Two 3x3 convolutions and a 2x2 max-pool. Without `batchnorm` each convolution has a
    bias instead and the BatchNorm slots are identities, so the layer numbers (and the
    weights' names) stay those of the trained model."""

    def norm(channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()

    return [
        nn.Conv2d(channels_in, middle, 3, padding=1, bias=not batchnorm),
        norm(middle),
        nn.ReLU(),
        nn.Conv2d(middle, channels_out, 3, padding=1, bias=not batchnorm),
        norm(channels_out),
        nn.ReLU(),
        nn.MaxPool2d(2),
    ]


class DigitNet(nn.Module):
    """[N, 1, 16, 16] in 0..1 → [N, 10] logits; two conv blocks and a small head.

    `widths` are the four convolutions' output channels and the head's hidden neurons (a
    pruned model has fewer); `batchnorm=False` is the model as exported, BatchNorm folded
    into the convolutions' biases."""

    def __init__(self, widths: Sequence[int] = WIDTHS, batchnorm: bool = True) -> None:
        super().__init__()
        c1, c2, c3, c4, hidden = widths
        self.layers = nn.Sequential(
            *conv_block(1, c1, c2, batchnorm),
            *conv_block(c2, c3, c4, batchnorm),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(c4 * 4 * 4, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 10),
        )

    def forward(self, image_tensor: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.layers(image_tensor)
        return logits


CONVS_AND_HIDDEN = ("layers.0", "layers.3", "layers.7", "layers.10", "layers.16")
"""The layers whose output sizes are `DigitNet`'s widths."""


def onnx_weights(onnx_path: Path) -> dict[str, np.ndarray]:
    """The initializers of an exported DigitNet, named as its state_dict names them (the
    exporter calls a convolution's folded-in bias `<layer>.weight_bias`)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    weights = {}
    for tensor in graph.initializer:
        name = tensor.name
        if name.endswith(".weight_bias"):
            name = name.removesuffix(".weight_bias") + ".bias"
        weights[name] = numpy_helper.to_array(tensor)
    return weights


def from_onnx(onnx_path: Path) -> DigitNet:
    """The DigitNet whose weights a model.onnx holds: its widths read off the weights' shapes;
    BatchNorm layers only when the graph kept them (the exporter folds them in eval mode)."""
    weights = onnx_weights(onnx_path)
    missing = [f"{layer}.weight" for layer in CONVS_AND_HIDDEN if f"{layer}.weight" not in weights]
    if missing:
        raise SpecError(
            f"{onnx_path} is not an exported DigitNet (no {', '.join(missing)}); "
            "the digits recipe rebuilds only the model examples/digits/train.py exports"
        )
    widths = [int(weights[f"{layer}.weight"].shape[0]) for layer in CONVS_AND_HIDDEN]
    batchnorm = "layers.1.running_mean" in weights
    model = DigitNet(widths, batchnorm=batchnorm)
    state = model.state_dict()
    loaded = {}
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            loaded[name] = value
            continue
        found = weights.get(name)
        if found is None or tuple(found.shape) != tuple(value.shape):
            shape = None if found is None else tuple(found.shape)
            raise SpecError(
                f"{onnx_path}: {name} is {shape} in the graph, DigitNet{tuple(widths)} needs "
                f"{tuple(value.shape)}; it is not a model the digits recipe exported"
            )
        loaded[name] = torch.from_numpy(found.copy())
    model.load_state_dict(loaded)
    return model.eval()


# --- the recipe -------------------------------------------------------------------------------


class DigitsRecipe:
    """`inferd.optimize.recipe.Recipe` for the digits CNN."""

    keep_whole = ("layers.0", "layers.3")
    """The first block's convolutions are not pruned: they read the raw pixels, and every
    ratio that thinned them to 8 channels lost the same 5 eval digits, while pruning only the
    later layers keeps accuracy within a point and still runs about 1.5x faster."""

    def build(self, onnx_path: Path | None) -> nn.Module:
        if onnx_path is None:
            return DigitNet().eval()
        return from_onnx(onnx_path)

    def load_data(self) -> TrainingSet:
        """The 1437 training digits as 8x8 PNGs, as a client would send them (the test
        digits are the model's eval data and never trained on)."""
        train_x, _, train_y, _ = split()
        return TrainingSet(
            instances=[instance(digit_image(digit)) for digit in train_x],
            targets=[str(int(label)) for label in train_y],
        )

    def encode(
        self, instances: Sequence[Any], rng: np.random.Generator | None
    ) -> tuple[torch.Tensor, ...]:
        images = [instance_image(item) for item in instances]
        if rng is not None:
            images = [augment(image, rng) for image in images]
        return (torch.from_numpy(tensors(images)),)

    def train_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        inputs: tuple[torch.Tensor, ...],
        loss: Callable[[torch.Tensor], torch.Tensor],
    ) -> float:
        model.train()
        value = loss(model(*inputs))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        return float(value.item())

    def optimizer(self, model: nn.Module, lr_scale: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=LR * lr_scale, weight_decay=WEIGHT_DECAY)

    def export(self, model: nn.Module, folder: Path) -> None:
        self.export_checked(model, folder)

    def export_checked(
        self, model: nn.Module, folder: Path, check: Mapping[str, np.ndarray] | None = None
    ) -> Exported:
        """`folder`/model.onnx, checked against torch on `check` (default: 256 training
        digits through the serving transform) at several batch sizes before it is written."""
        if check is None:
            data = self.load_data()
            (inputs,) = self.encode(data.instances[:256], None)
            check = {"image_tensor": inputs.numpy()}
        return export_onnx(model, folder / "model.onnx", ONNX, check, atol=1e-4)


def recipe() -> DigitsRecipe:
    return DigitsRecipe()
