"""The image stage on hostile bytes: any bytes, and real PNG/JPEG/GIF/BMP/WebP/TIFF/... files
of every colour mode with bytes broken, decode into the tensor the stage promises or are
refused with a 400."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from inferd.errors import BadRequestError
from inferd.spec import ImageStage
from inferd.stages import Item, image
from tests.support.stages import apply
from tests.unit.fuzz.mutations import mutated
from tests.unit.fuzz.outcome import examples, outcome

MODES = ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "LA", "RGBX"]
FORMATS = ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "ICO", "PPM", "TGA", "PCX", "SGI"]


def _seeds() -> dict[tuple[str, str], bytes]:
    """Small real files: every colour mode in every format Pillow writes it to."""
    pixels = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    found = {}
    for mode in MODES:
        picture = Image.fromarray(pixels).convert(mode)
        for fmt in FORMATS:
            buffer = io.BytesIO()
            try:
                picture.save(buffer, fmt)
            except (OSError, ValueError, KeyError):
                continue  # this format does not hold this mode
            found[mode, fmt] = buffer.getvalue()
    deep = io.BytesIO()
    Image.fromarray(np.arange(30, dtype=np.uint16).reshape(6, 5) * 2000).save(deep, "PNG")
    found["I;16", "PNG"] = deep.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate on display
    rotated = io.BytesIO()
    Image.fromarray(pixels).save(rotated, "JPEG", exif=exif)
    found["RGB+EXIF", "JPEG"] = rotated.getvalue()
    return found


SEEDS = _seeds()
# Pillow warns of what it skips in broken files (EXIF, TIFF tags) and of big images, which
# the stage refuses itself: expected here, by the thousand.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:PIL"),
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
]

MAX_PIXELS = 1_000_000
"""Kept low so broken headers that claim big images decode quickly (the limit is tested too)."""


@st.composite
def stages(draw: st.DrawFn) -> ImageStage:
    color = draw(st.sampled_from(["L", "RGB", "BGR"]))
    layouts = ["CHW", "HWC", "HW"] if color == "L" else ["CHW", "HWC"]
    return ImageStage(
        type="image",
        size=(draw(st.integers(1, 9)), draw(st.integers(1, 9))),
        color=color,
        resample=draw(st.sampled_from(["nearest", "bilinear", "bicubic", "lanczos", "box"])),
        keep_aspect=draw(st.booleans()),
        pad_value=draw(st.integers(0, 255)),
        invert=draw(st.sampled_from([False, True, "auto"])),
        layout=draw(st.sampled_from(layouts)),
        datatype=draw(st.sampled_from(["FP32", "FP16", "UINT8"])),
        max_pixels=MAX_PIXELS,
    )


def check_stage(stage: ImageStage, data: Any) -> None:
    """Run the built stage on `data`: a tensor of the promised shape and dtype, or a 400."""
    result = outcome(apply, image.build(stage, "img", "x"), {"img": data})
    if not isinstance(result, Item):
        assert isinstance(result, BadRequestError)
        return
    tensor = result.values["x"]
    width, height = stage.size
    channels = 1 if stage.color == "L" else 3
    expected = {
        "CHW": (channels, height, width),
        "HWC": (height, width, channels),
        "HW": (height, width),
    }[stage.layout]
    assert tensor.shape == expected
    assert (
        tensor.dtype == {"FP32": np.float32, "FP16": np.float16, "UINT8": np.uint8}[stage.datatype]
    )
    assert np.isfinite(tensor.astype(np.float32)).all()
    geometry = result.context["img"]
    assert geometry.width >= 1 and geometry.height >= 1


def check_decode(data: bytes) -> None:
    result = outcome(image.decode_image, data, "img", MAX_PIXELS)
    if isinstance(result, Image.Image):
        assert result.width * result.height <= MAX_PIXELS


@pytest.mark.parametrize(("mode", "fmt"), sorted(SEEDS))
def test_every_seed_through_every_colour(mode: str, fmt: str) -> None:
    for color, layout in (("L", "HW"), ("RGB", "CHW"), ("BGR", "HWC")):
        for keep_aspect in (False, True):
            stage = ImageStage(
                type="image",
                size=(4, 3),
                color=color,
                layout=layout,
                keep_aspect=keep_aspect,
                invert="auto",
                max_pixels=MAX_PIXELS,
            )
            check_stage(stage, np.array([SEEDS[mode, fmt]], dtype=object))


@settings(max_examples=examples(150), deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes(data: bytes) -> None:
    check_decode(data)
    check_stage(ImageStage(type="image", size=(3, 3), max_pixels=MAX_PIXELS), data)


@settings(max_examples=examples(300), deadline=None)
@given(mutated(list(SEEDS.values())))
def test_mutated_files(data: bytes) -> None:
    check_decode(data)


@settings(max_examples=examples(200), deadline=None)
@given(mutated(list(SEEDS.values())), stages())
def test_mutated_files_through_the_stage(data: bytes, stage: ImageStage) -> None:
    check_stage(stage, data)


@settings(max_examples=examples(50))
@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=5),
        st.lists(st.binary(max_size=4), max_size=3).map(lambda v: np.array(v, dtype=object)),
        st.just(np.zeros((2, 2), np.float32)),
    )
)
def test_values_that_are_not_one_file(value: Any) -> None:
    check_stage(ImageStage(type="image", size=(3, 3), max_pixels=MAX_PIXELS), value)


def test_a_cielab_image_for_a_grey_model_is_refused() -> None:
    """Regression: Pillow converts CIELab (a TIFF can hold it) to RGB only, so a grey model
    raised ValueError (a 500) on a LAB TIFF."""
    stage = ImageStage(type="image", size=(4, 3), color="L", layout="HW")
    with pytest.raises(BadRequestError) as caught:
        apply(image.build(stage, "img", "x"), {"img": SEEDS["LAB", "TIFF"]})
    assert caught.value.message == (
        "input 'img' is a LAB image, which cannot be converted to L; send RGB or greyscale pixels"
    )
