"""Synthetic detection scenes made of scikit-learn's 8x8 digits, for the `digit-detector` example.

A scene is a grey canvas of any size (96..256 px a side by default) with a dark, uneven, noisy
background and 0-6 light digits (uniformly many, so one scene in seven is empty) pasted at
random places, sizes and contrasts, a few of them overlapping. Everything is drawn from a
`numpy.random.Generator`, so a seed gives the same scenes on every run and machine.

- Digits: `load_split` splits the 1797 sklearn digits 80/20 (stratified, random_state 0, the
  same split as examples/digits); held-out scenes are drawn from the test digits only.
- Size: a digit's 8x8 array is upsampled (bilinear or bicubic) to a patch 14-48 px tall and
  0.8-1.2 times as wide; on a large canvas it is made at least `MIN_SERVED_HEIGHT` px tall as
  seen by the model after letterboxing to 128x128 (so a 256 px canvas gets digits >= 24 px).
- Box: the tight box of the digit's ink, i.e. the patch pixels with ink >= `INK_THRESHOLD` of
  full strength, as [x1, y1, x2, y2] floats with exclusive x2/y2 (x2 = x1 + width).
- Overlap: a new digit is placed where its ink box has IoU <= `MAX_IOU` with every earlier one
  and covers at most `MAX_COVER` of the smaller box; digits are alpha-blended in order, so a
  later one partly hides an earlier one.
- Contrast: background level 0-90 plus a linear gradient of up to 40 levels; each digit's ink
  is at least 50 levels brighter than that level (up to 255).
- Augmentation (`augment=True`, for training scenes only): most digits are also rotated by up
  to 12 degrees, sheared by up to 0.25 and made bolder or thinner (ink ** 0.6..1.6); the box
  is the ink box after that.
- Noise: gaussian grain with a random grain size (1-4 px; coarse grain is upsampled nearest
  or bilinear) and strength, added last. Coarse grain also keeps the eval PNGs small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SPLIT_SEED = 0
TEST_SIZE = 0.2
CANVAS = (96, 256)  # width and height are each drawn from this range (inclusive)
DIGIT_HEIGHT = (14, 48)  # height of the upsampled 8x8 patch, in canvas pixels
DIGIT_ASPECT = (0.8, 1.2)  # patch width / height
MIN_SERVED_HEIGHT = 12  # px, after letterboxing the canvas to SERVED_SIZE
SERVED_SIZE = 128
MAX_DIGITS = 6
MAX_IOU = 0.3
MAX_COVER = 0.5
INK_THRESHOLD = 0.25  # a patch pixel is ink when its value is >= 4/16
PLACEMENT_TRIES = 50
WARP_DEGREES = 12.0  # training scenes only (augment=True): rotation, shear, stroke gamma
WARP_SHEAR = 0.25
WARP_GAMMA = (0.6, 1.6)
GRAIN_STEPS = (1, 2, 3, 4)  # px per noise sample; fine grain is rarer (it makes large PNGs)
GRAIN_WEIGHTS = (0.15, 0.25, 0.3, 0.3)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Digits:
    images: np.ndarray  # [N, 8, 8] float64, 0..16 (light ink on dark)
    labels: np.ndarray  # [N] int


@dataclass(frozen=True)
class Scene:
    image: Image.Image  # mode "L", original size
    labels: list[int]
    boxes: list[Box]  # ink boxes in the image's pixel coordinates, x2/y2 exclusive


def load_split() -> tuple[Digits, Digits]:
    """The sklearn digits split 80/20 (stratified, fixed seed) into train and test."""
    data = load_digits()
    train_x, test_x, train_y, test_y = train_test_split(
        data.images.astype(np.float64),
        data.target,
        test_size=TEST_SIZE,
        random_state=SPLIT_SEED,
        stratify=data.target,
    )
    return Digits(train_x, train_y), Digits(test_x, test_y)


def letterbox_geometry(
    width: int, height: int, size: int = SERVED_SIZE
) -> tuple[int, int, int, int]:
    """(inner_w, inner_h, left, top) of inferd's keep_aspect resize to size x size."""
    scale = min(size / width, size / height)
    inner_w, inner_h = max(1, round(width * scale)), max(1, round(height * scale))
    return inner_w, inner_h, (size - inner_w) // 2, (size - inner_h) // 2


def letterbox(image: Image.Image, size: int = SERVED_SIZE, pad: int = 0) -> Image.Image:
    """Exactly inferd's image stage with keep_aspect: bilinear resize to fit, centred, padded."""
    inner_w, inner_h, left, top = letterbox_geometry(image.width, image.height, size)
    canvas = Image.new("L", (size, size), pad)
    canvas.paste(image.resize((inner_w, inner_h), Image.Resampling.BILINEAR), (left, top))
    return canvas


def to_served(boxes: np.ndarray, width: int, height: int, size: int = SERVED_SIZE) -> np.ndarray:
    """Map [K, 4] xyxy boxes from a width x height image into the letterboxed size x size one."""
    inner_w, inner_h, left, top = letterbox_geometry(width, height, size)
    factor = np.array([inner_w / width, inner_h / height] * 2)
    return boxes * factor + np.array([left, top, left, top], dtype=np.float64)


def from_served(boxes: np.ndarray, width: int, height: int, size: int = SERVED_SIZE) -> np.ndarray:
    """The inverse of `to_served`: model-input boxes back into the original image, clipped."""
    inner_w, inner_h, left, top = letterbox_geometry(width, height, size)
    factor = np.array([inner_w / width, inner_h / height] * 2)
    out = (boxes - np.array([left, top, left, top], dtype=np.float64)) / factor
    return np.clip(out, 0, np.array([width, height, width, height], dtype=np.float64))


def box_iou(a: Box, b: Box) -> tuple[float, float]:
    """(IoU, intersection / area of the smaller box) of two xyxy boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0, 0.0
    inter = w * h
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter), inter / min(area_a, area_b)


def _patch(digit: np.ndarray, width: int, height: int, bicubic: bool) -> np.ndarray:
    """The 8x8 digit as a width x height ink-strength map in 0..1."""
    resample = Image.Resampling.BICUBIC if bicubic else Image.Resampling.BILINEAR
    small = Image.fromarray((digit / 16.0).astype(np.float32), "F")
    return np.clip(np.asarray(small.resize((width, height), resample)), 0.0, 1.0)


def _warp(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Training variety: a slight rotation and shear, and thicker or thinner strokes."""
    height, width = ink.shape
    margin = int(np.ceil(0.25 * max(height, width)))
    big = np.zeros((height + 2 * margin, width + 2 * margin), dtype=np.float32)
    big[margin : margin + height, margin : margin + width] = ink
    angle = np.radians(rng.uniform(-WARP_DEGREES, WARP_DEGREES))
    shear = rng.uniform(-WARP_SHEAR, WARP_SHEAR)
    cos, sin = np.cos(angle), np.sin(angle)
    forward = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, shear], [0.0, 1.0]])
    inverse = np.linalg.inv(forward)  # PIL maps output pixels to input pixels
    cx, cy = big.shape[1] / 2, big.shape[0] / 2
    shift = np.array([cx, cy]) - inverse @ np.array([cx, cy])
    matrix = (inverse[0, 0], inverse[0, 1], shift[0], inverse[1, 0], inverse[1, 1], shift[1])
    warped = Image.fromarray(big, "F").transform(
        (big.shape[1], big.shape[0]), Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR
    )
    out = np.clip(np.asarray(warped, dtype=np.float64), 0.0, 1.0) ** rng.uniform(*WARP_GAMMA)
    rows = np.flatnonzero(out.max(axis=1) > 0.02)
    cols = np.flatnonzero(out.max(axis=0) > 0.02)
    return out[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _grain(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    step = int(rng.choice(GRAIN_STEPS, p=GRAIN_WEIGHTS))
    sigma = rng.uniform(1.0, 4.0) if step == 1 else rng.uniform(2.0, 10.0)
    small = rng.normal(0.0, sigma, size=(-(-height // step) + 1, -(-width // step) + 1))
    if step == 1:
        return small[:height, :width]
    resample = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BILINEAR
    grain = Image.fromarray(small.astype(np.float32), "F").resize(
        (small.shape[1] * step, small.shape[0] * step), resample
    )
    return np.asarray(grain, dtype=np.float64)[:height, :width]


def make_scene(
    rng: np.random.Generator,
    digits: Digits,
    size: tuple[int, int] | None = None,
    count: int | None = None,
    augment: bool = False,
) -> Scene:
    """One random scene; `size` (width, height) and `count` (number of digits) default to random.

    `augment` (for training) also rotates, shears and thickens or thins most digits slightly.
    """
    if size is None:
        width, height = (int(v) for v in rng.integers(CANVAS[0], CANVAS[1] + 1, size=2))
    else:
        width, height = size
    if count is None:
        count = int(rng.integers(0, MAX_DIGITS + 1))

    # Background: a level, a linear gradient in a random direction.
    level = rng.uniform(0.0, 90.0)
    angle = rng.uniform(0.0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height) * rng.uniform(0.0, 40.0)
    canvas = level + ramp - ramp.mean()

    served_scale = min(SERVED_SIZE / width, SERVED_SIZE / height)
    low = max(DIGIT_HEIGHT[0], int(np.ceil(MIN_SERVED_HEIGHT / served_scale)))
    high = max(low, min(DIGIT_HEIGHT[1], int(0.9 * min(width, height))))
    labels: list[int] = []
    boxes: list[Box] = []
    for _ in range(count):
        index = int(rng.integers(len(digits.labels)))
        patch_h = int(rng.integers(low, high + 1))
        patch_w = max(6, min(width, round(patch_h * rng.uniform(*DIGIT_ASPECT))))
        ink = _patch(digits.images[index], patch_w, patch_h, bicubic=bool(rng.random() < 0.5))
        if augment and rng.random() < 0.8:
            warped = _warp(ink, rng)
            if warped.shape[0] <= height and warped.shape[1] <= width:
                ink = warped
                patch_h, patch_w = ink.shape
        rows = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=1))
        cols = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=0))
        for _ in range(PLACEMENT_TRIES):
            x0 = int(rng.integers(0, width - patch_w + 1))
            y0 = int(rng.integers(0, height - patch_h + 1))
            box = (
                float(x0 + cols[0]),
                float(y0 + rows[0]),
                float(x0 + cols[-1] + 1),
                float(y0 + rows[-1] + 1),
            )
            if all(
                iou <= MAX_IOU and cover <= MAX_COVER
                for iou, cover in (box_iou(box, other) for other in boxes)
            ):
                break
        else:
            continue  # no room left for this digit
        brightness = min(255.0, level + rng.uniform(50.0, 255.0 - level + 20.0))
        region = canvas[y0 : y0 + patch_h, x0 : x0 + patch_w]
        region *= 1.0 - ink
        region += ink * brightness
        labels.append(int(digits.labels[index]))
        boxes.append(box)

    canvas += _grain(rng, width, height)
    pixels = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return Scene(Image.fromarray(pixels, "L"), labels, boxes)
