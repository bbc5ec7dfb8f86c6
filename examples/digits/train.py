"""Train the bundled `digits` example: a small CNN on scikit-learn's 8x8 handwritten digits.

Run from the repository root (needs the `train` extra: torch, onnx, scikit-learn):

    .venv/bin/python examples/digits/train.py

It writes model_repository/digits/ (model.yaml, labels.txt, 1/model.onnx, eval/test.jsonl)
and examples/digits/samples/ (seven.png, three.jpg), and prints the held-out accuracy with the
test digits rendered at several sizes.

The model never sees the 8x8 arrays directly: every training and test image goes through
`serving_tensor`, a copy of what inferd's image stage does with an uploaded file (grey, invert
when the border is light, bilinear resize to 16x16, scale to 0..1). Training images are the
digits upscaled to random sizes with random filters, slightly moved, rotated and rescaled,
with random contrast, sometimes dark-on-light and sometimes JPEG-compressed, so a phone photo
or a 64x64 scan of a digit lands where the training data was.
"""

from __future__ import annotations

import base64
import io
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image, ImageOps
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from inferd.optimize.export import (
    OnnxRecipe,
    export_onnx,
    onnx_session,
    reproducible,
    write_jsonl,
    write_labels,
    write_model_yaml,
)
from inferd.spec import ImageStage, ModelSpec
from inferd.stages.image import build

SEED = 0
SIZE = 16
EPOCHS = 30
COPIES_PER_EPOCH = 4  # augmented renders of each training digit per epoch
BATCH = 128
EVAL_SIZES = (8, 16, 24, 32, 64, 96)

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "model_repository" / "digits"
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
RECIPE = OnnxRecipe({"image_tensor": np.zeros((2, 1, SIZE, SIZE), np.float32)}, ("logits",))

FILTERS = (
    Image.Resampling.NEAREST,
    Image.Resampling.BILINEAR,
    Image.Resampling.BICUBIC,
    Image.Resampling.LANCZOS,
    Image.Resampling.BOX,
    Image.Resampling.HAMMING,
)

MODEL_YAML = """\
# The bundled image-classification example; rebuild with examples/digits/train.py.
name: digits
task: classification
backend: onnx
description: >-
  Handwritten digit classifier (0-9): a small CNN trained on scikit-learn's 8x8 digits.
  Send any grey or colour PNG/JPEG of one digit, light-on-dark or dark-on-light;
  it is reduced to 16x16 grey before the model sees it.
inputs:
  - {name: image, datatype: BYTES, shape: [1]}
preprocess:
  - type: image
    input: image
    output: image_tensor
    color: L
    size: [16, 16]
    resample: bilinear
    invert: auto
    layout: CHW
    datatype: FP32
postprocess:
  - {type: classify, output: logits, softmax: auto, top_k: 3}
labels: labels.txt
batching: {max_batch_size: 64, max_delay_ms: 0, max_queue: 2048}
runtime: {threads: 1}
eval: {data: eval/test.jsonl, metric: accuracy, threshold: 0.97}
"""


# --- the serving transform and the renders fed to it ------------------------------------------


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


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def digit_image(digit: np.ndarray) -> Image.Image:
    """An 8x8 digit (values 0..16, light ink on dark) as an 8-bit grey image."""
    return Image.fromarray((digit * 255 / 16).round().astype(np.uint8), "L")


def render(digit: np.ndarray, size: int, dark_on_light: bool = False) -> Image.Image:
    """The plain render used for evaluation and the samples: bilinear upscale, no jitter."""
    image = digit_image(digit)
    if size != image.width:
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return ImageOps.invert(image) if dark_on_light else image


def on_page(digit: np.ndarray, size: int, page: int = 64) -> Image.Image:
    """A scan-like render: the digit drawn `size` px tall, centred on a white `page` square."""
    canvas = Image.new("L", (page, page), 0)
    offset = (page - size) // 2
    canvas.paste(render(digit, size), (offset, offset))
    return ImageOps.invert(canvas)


def augment(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A random render of one digit: size, filter, pose, contrast, polarity, compression."""
    side = int(rng.integers(8, 97))
    width = max(8, round(side * rng.uniform(0.85, 1.15)))
    image = digit_image(digit).resize((width, side), FILTERS[rng.integers(len(FILTERS))])
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


def tensors(images: list[Image.Image]) -> np.ndarray:
    return np.stack([serving_tensor(image) for image in images])


# --- the model ---------------------------------------------------------------------------------


def conv_block(channels_in: int, channels_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(),
        nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(),
        nn.MaxPool2d(2),
    ]


class DigitNet(nn.Module):
    """[N, 1, 16, 16] in 0..1 → [N, 10] logits; two conv blocks and a small head."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *conv_block(1, 16),
            *conv_block(16, 32),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, image_tensor: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.layers(image_tensor)
        return logits


def train(model: nn.Module, digits: np.ndarray, targets: np.ndarray) -> None:
    rng = np.random.default_rng(SEED)
    labels = torch.from_numpy(np.tile(targets, COPIES_PER_EPOCH)).long()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = EPOCHS * math.ceil(len(labels) / BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    for epoch in range(EPOCHS):
        images = [augment(d, rng) for _ in range(COPIES_PER_EPOCH) for d in digits]
        inputs = torch.from_numpy(tensors(images))
        order = torch.from_numpy(rng.permutation(len(labels)))
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            logits = model(inputs[batch])
            loss = nn.functional.cross_entropy(logits, labels[batch], label_smoothing=0.05)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += len(batch)
            correct += int((logits.argmax(1) == labels[batch]).sum())
            loss_sum += loss.item() * len(batch)
        if epoch % 5 == 4 or epoch == EPOCHS - 1:
            print(
                f"  epoch {epoch + 1:2d}: loss {loss_sum / total:.4f}, "
                f"augmented train accuracy {correct / total:.4f}"
            )


# --- export and checks -------------------------------------------------------------------------


def predict(sess: ort.InferenceSession, inputs: np.ndarray) -> np.ndarray:
    batches = range(0, len(inputs), 64)
    logits = [sess.run(["logits"], {"image_tensor": inputs[i : i + 64]})[0] for i in batches]
    return np.concatenate(logits)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def write_repository(test_x: np.ndarray, test_y: np.ndarray) -> ModelSpec:
    spec = write_model_yaml(MODEL_DIR, MODEL_YAML)
    write_labels(MODEL_DIR, range(10))
    records = []
    for i, (digit, target) in enumerate(zip(test_x, test_y, strict=True)):
        data = png_bytes(render(digit, 64, dark_on_light=i % 2 == 1))
        records.append(
            {"instance": {"b64": base64.b64encode(data).decode()}, "target": str(target)}
        )
    write_jsonl(MODEL_DIR / "eval" / "test.jsonl", records)
    return spec


def main() -> None:
    started = time.perf_counter()
    reproducible(SEED, threads=2)

    data = load_digits()
    images8 = data.images.astype(np.float64)
    train_x, test_x, train_y, test_y = train_test_split(
        images8, data.target, test_size=0.2, random_state=0, stratify=data.target
    )
    print(f"digits: {len(train_x)} train, {len(test_x)} test")

    model = DigitNet()
    print(f"training DigitNet ({sum(p.numel() for p in model.parameters())} parameters)")
    train(model, train_x, train_y)
    trained = time.perf_counter()

    # ONNX Runtime must agree with torch on real inputs, at several batch sizes.
    onnx_path = MODEL_DIR / "1" / "model.onnx"
    check = {"image_tensor": tensors([render(d, 64) for d in test_x])}
    exported = export_onnx(model, onnx_path, RECIPE, check, atol=1e-4)
    sess = onnx_session(onnx_path)
    print(f"onnx matches torch (max |diff| {exported.max_diff:.2e})")

    print("held-out accuracy (onnx, through the serving transform):")
    for size in EVAL_SIZES:
        for dark in (False, True):
            inputs = tensors([decode(png_bytes(render(d, size, dark))) for d in test_x])
            accuracy = float((predict(sess, inputs).argmax(1) == test_y).mean())
            polarity = "dark-on-light" if dark else "light-on-dark"
            print(f"  {size:3d}x{size:<3d} {polarity}: {accuracy:.4f}")
    for size in (48, 32):
        inputs = tensors([decode(png_bytes(on_page(d, size))) for d in test_x])
        accuracy = float((predict(sess, inputs).argmax(1) == test_y).mean())
        print(f"  {size}px digit centred on a white 64x64 page: {accuracy:.4f}")

    spec = write_repository(test_x, test_y)
    lines = (MODEL_DIR / "eval" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    inputs = tensors([decode(base64.b64decode(r["instance"]["b64"])) for r in records])
    predicted = predict(sess, inputs).argmax(1)
    targets = [r["target"] for r in records]
    accuracy = float(np.mean([str(p) == t for p, t in zip(predicted, targets, strict=True)]))
    print(f"eval/test.jsonl ({len(records)} PNGs, 64x64): accuracy {accuracy:.4f}")
    assert accuracy >= 0.97, "below the model.yaml threshold"

    compare_with_inferd(spec, records)
    write_samples(sess, test_x, test_y)
    size_kb = onnx_path.stat().st_size / 1024
    print(f"wrote {MODEL_DIR} (model.onnx {size_kb:.0f} KiB)")
    print(
        f"training took {trained - started:.0f} s, everything {time.perf_counter() - started:.0f} s"
    )


def compare_with_inferd(spec: ModelSpec, records: list[dict[str, Any]]) -> None:
    """Report whether this script's transform still equals inferd's image stage, bit for bit."""
    assert isinstance(spec.preprocess[0], ImageStage)
    stage = build(spec.preprocess[0], "image", "image_tensor")
    worst = 0.0
    for record in records:
        data = base64.b64decode(record["instance"]["b64"])
        ours = serving_tensor(decode(data))
        theirs = stage({"image": data})["image_tensor"]
        worst = max(worst, float(np.abs(ours - theirs).max()))
    if worst == 0.0:
        print("the training transform equals inferd's image stage on eval/test.jsonl")
    else:
        print(f"WARNING: inferd's image stage differs from the training transform by {worst:.4g}")


def write_samples(sess: ort.InferenceSession, test_x: np.ndarray, test_y: np.ndarray) -> None:
    """A 64x64 PNG seven and a 48x48 JPEG three, dark ink on white, both classified right."""
    if SAMPLES_DIR.exists():
        shutil.rmtree(SAMPLES_DIR)
    SAMPLES_DIR.mkdir(parents=True)
    for name, label, size, fmt in (("seven.png", 7, 64, "PNG"), ("three.jpg", 3, 48, "JPEG")):
        for digit in test_x[test_y == label]:
            buffer = io.BytesIO()
            render(digit, size, dark_on_light=True).save(buffer, format=fmt, quality=90)
            data = buffer.getvalue()
            logits = predict(sess, serving_tensor(decode(data))[None])[0]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            if logits.argmax() == label and probs[label] > 0.9:
                (SAMPLES_DIR / name).write_bytes(data)
                print(f"sample {name}: predicted {logits.argmax()} (p={probs[label]:.3f})")
                break
        else:
            raise RuntimeError(f"no test {label} is classified confidently for {name}")


if __name__ == "__main__":
    main()
