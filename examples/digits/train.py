"""Train the bundled `digits` example: a small CNN on scikit-learn's 8x8 handwritten digits.

Run from the repository root (needs the `train` extra: torch, onnx, scikit-learn):

    .venv/bin/python examples/digits/train.py

It writes model_repository/digits/ (model.yaml, labels.txt, 1/model.onnx, eval/test.jsonl)
and examples/digits/samples/ (seven.png, three.jpg), and prints the held-out accuracy with the
test digits rendered at several sizes.

The model, its data, augmentation, serving transform, optimizer and export are the recipe's
(examples/digits/recipe.py), which `inferd optimize digits --prune R` fine-tunes through too;
this script is the training schedule and the checks around it.
"""

from __future__ import annotations

import base64
import io
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image, ImageOps
from torch import nn

from inferd.optimize.export import (
    onnx_session,
    reproducible,
    write_jsonl,
    write_labels,
    write_model_yaml,
)
from inferd.spec import ImageStage, ModelSpec
from inferd.stages import Item
from inferd.stages.image import build

# Run as a script, the repository root (where the `examples` package is) is not on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.digits.recipe import (
    BATCH,
    COPIES_PER_EPOCH,
    EPOCHS,
    LABEL_SMOOTHING,
    LR,
    SEED,
    DigitsRecipe,
    decode,
    digit_image,
    png_bytes,
    serving_tensor,
    split,
    tensors,
)

EVAL_SIZES = (8, 16, 24, 32, 64, 96)

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "model_repository" / "digits"
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"

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
recipe: examples.digits.recipe
"""


# --- renders of the test digits ------------------------------------------------------------


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


# --- training, through the recipe ---------------------------------------------------------------


def train(recipe: DigitsRecipe, model: nn.Module) -> None:
    """EPOCHS passes over COPIES_PER_EPOCH augmented renders of each training digit, AdamW
    with a one-cycle schedule, cross-entropy with a little label smoothing."""
    data = recipe.load_data()
    rng = np.random.default_rng(SEED)
    labels = torch.tensor([int(t) for t in data.targets] * COPIES_PER_EPOCH)
    optimizer = recipe.optimizer(model, 1.0)
    steps = EPOCHS * math.ceil(len(labels) / BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=steps)
    for epoch in range(EPOCHS):
        (inputs,) = recipe.encode(data.instances * COPIES_PER_EPOCH, rng)
        order = torch.from_numpy(rng.permutation(len(labels)))
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]

            def loss(logits: torch.Tensor, targets: torch.Tensor = labels[batch]) -> torch.Tensor:
                nonlocal correct
                correct += int((logits.argmax(1) == targets).sum())
                return nn.functional.cross_entropy(logits, targets, label_smoothing=LABEL_SMOOTHING)

            loss_sum += recipe.train_step(model, optimizer, (inputs[batch],), loss) * len(batch)
            schedule.step()
            total += len(batch)
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

    train_x, test_x, _, test_y = split()
    print(f"digits: {len(train_x)} train, {len(test_x)} test")

    recipe = DigitsRecipe()
    model = recipe.build(None)
    print(f"training DigitNet ({sum(p.numel() for p in model.parameters())} parameters)")
    train(recipe, model)
    trained = time.perf_counter()

    # ONNX Runtime must agree with torch on real inputs, at several batch sizes.
    check = {"image_tensor": tensors([render(d, 64) for d in test_x])}
    exported = recipe.export_checked(model, MODEL_DIR / "1", check)
    onnx_path = exported.path
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
        item = Item.of({"image": data})
        stage(item)
        theirs = item.values["image_tensor"]
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
