"""The image stage: decode any file Pillow reads, orient, colour, invert, resize, normalize."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from inferd.errors import BadRequestError
from inferd.spec import ImageStage
from inferd.stages import ImageGeometry, image
from tests.support.stages import apply

RAW = {"scale": 1.0, "mean": [0.0], "std": [1.0]}
"""Stage options that leave pixel values as they are (as float)."""


def _encode(pixels: np.ndarray, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def _run(data: Any, **options: Any) -> np.ndarray:
    stage = ImageStage(type="image", **options)
    item = apply(image.build(stage, "img", "x"), {"img": data})
    out = item.values
    assert set(out) == {"x"} and set(item.context) == {"img"}
    tensor = out["x"]
    assert isinstance(tensor, np.ndarray)
    return tensor


def _error(data: Any, **options: Any) -> str:
    options.setdefault("size", (4, 4))
    with pytest.raises(BadRequestError) as caught:
        _run(data, **options)
    return caught.value.message


def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _png_header_only(width: int, height: int) -> bytes:
    """A well-formed grey PNG that claims `width`x`height` pixels but holds almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1)))
        + chunk(b"IEND", b"")
    )


# --- decoding ---------------------------------------------------------------------------------


def test_png_decodes_exactly() -> None:
    pixels = _rgb(3, 5)
    tensor = _run(_encode(pixels, "PNG"), size=(5, 3), layout="HWC", **RAW)
    assert tensor.shape == (3, 5, 3)
    assert tensor.dtype == np.float32
    np.testing.assert_array_equal(tensor, pixels.astype(np.float32))


def test_jpeg_decodes_close_to_the_original() -> None:
    pixels = np.zeros((16, 16, 3), dtype=np.uint8)
    pixels[..., 0] = 200
    pixels[..., 1] = 100
    pixels[..., 2] = 30
    tensor = _run(_encode(pixels, "JPEG", quality=95), size=(16, 16), layout="HWC", **RAW)
    np.testing.assert_allclose(tensor, pixels.astype(np.float32), atol=4)


def test_webp_lossless_decodes_exactly() -> None:
    pixels = _rgb(4, 6, seed=3)
    tensor = _run(_encode(pixels, "WEBP", lossless=True), size=(6, 4), layout="HWC", **RAW)
    np.testing.assert_array_equal(tensor, pixels.astype(np.float32))


def test_gif_palette_image_decodes() -> None:
    grey = np.array([[0, 255, 0], [255, 0, 255]], dtype=np.uint8)
    tensor = _run(_encode(grey, "GIF"), size=(3, 2), color="L", layout="HW", **RAW)
    np.testing.assert_array_equal(tensor, grey.astype(np.float32))


def test_16_bit_grey_png_is_scaled_not_clipped() -> None:
    # A 16-bit PNG spans 0..65535; as 8-bit grey that is value / 257, not min(value, 255).
    deep = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(deep).save(buffer, "PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode == "I;16"
    tensor = _run(buffer.getvalue(), size=(4, 4), color="L", layout="HW", **RAW)
    np.testing.assert_allclose(tensor, deep / 257.0, atol=1.0)


def test_exif_orientation_is_applied() -> None:
    # Stored 16 wide x 8 high: left half black, right half white. Orientation 6 means
    # "rotate 90 degrees clockwise to display", so the displayed image is 8 wide x 16 high.
    stored = np.zeros((8, 16), dtype=np.uint8)
    stored[:, 8:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", exif=exif, quality=95)
    tensor = _run(buffer.getvalue(), size=(8, 16), color="L", layout="HW", **RAW)
    expected = np.rot90(stored, k=-1).astype(np.float32)
    assert tensor.shape == (16, 8)
    np.testing.assert_allclose(tensor, expected, atol=12)
    assert tensor[:8].mean() < 20 and tensor[8:].mean() > 235  # top black, bottom white


# --- colour -----------------------------------------------------------------------------------


def _one_colour(r: int, g: int, b: int) -> bytes:
    pixels = np.empty((2, 2, 3), dtype=np.uint8)
    pixels[...] = (r, g, b)
    return _encode(pixels, "PNG")


def test_rgb_keeps_channel_order() -> None:
    tensor = _run(_one_colour(10, 20, 30), size=(2, 2), layout="CHW", **RAW)
    assert tensor.shape == (3, 2, 2)
    assert tensor[:, 0, 0].tolist() == [10.0, 20.0, 30.0]


def test_bgr_reverses_channel_order() -> None:
    tensor = _run(_one_colour(10, 20, 30), size=(2, 2), color="BGR", layout="CHW", **RAW)
    assert tensor[:, 1, 1].tolist() == [30.0, 20.0, 10.0]


def test_grey_uses_luma_weights() -> None:
    tensor = _run(_one_colour(10, 20, 30), size=(2, 2), color="L", layout="CHW", **RAW)
    assert tensor.shape == (1, 2, 2)
    luma = (299 * 10 + 587 * 20 + 114 * 30) / 1000  # ITU-R 601-2
    assert abs(float(tensor[0, 0, 0]) - luma) <= 1.0


def test_grey_image_becomes_rgb_when_asked() -> None:
    grey = np.full((2, 2), 77, dtype=np.uint8)
    tensor = _run(_encode(grey, "PNG"), size=(2, 2), color="RGB", layout="HWC", **RAW)
    assert tensor.shape == (2, 2, 3)
    assert np.all(tensor == 77.0)


# --- invert -----------------------------------------------------------------------------------


def _ink_on_paper(ink: int, paper: int, width: int = 8, height: int = 8) -> np.ndarray:
    pixels = np.full((height, width), paper, dtype=np.uint8)
    pixels[2:-2, 2:-2] = ink
    return pixels


@pytest.mark.parametrize(
    ("invert", "paper", "ink", "expect_inverted"),
    [
        (True, 0, 200, True),
        (True, 255, 10, True),
        (False, 255, 10, False),
        ("auto", 255, 10, True),  # dark ink on light paper: inverted to light-on-dark
        ("auto", 0, 200, False),  # already light on dark
        ("auto", 230, 20, True),
    ],
)
def test_invert(invert: bool | str, paper: int, ink: int, expect_inverted: bool) -> None:
    pixels = _ink_on_paper(ink, paper)
    tensor = _run(_encode(pixels, "PNG"), size=(8, 8), color="L", layout="HW", invert=invert, **RAW)
    expected = 255 - pixels if expect_inverted else pixels
    np.testing.assert_array_equal(tensor, expected.astype(np.float32))


def test_auto_invert_on_colour_image() -> None:
    pixels = np.full((6, 6, 3), 240, dtype=np.uint8)
    pixels[2:4, 2:4] = (5, 10, 15)
    tensor = _run(_encode(pixels, "PNG"), size=(6, 6), layout="HWC", invert="auto", **RAW)
    np.testing.assert_array_equal(tensor, (255 - pixels).astype(np.float32))


def test_letterbox_padding_keeps_pad_value_when_inverting() -> None:
    # A light 16x8 image letterboxed into 16x16 with pad 0 and inverted: the image is
    # inverted, but the padding is what the model was told to expect, pad_value.
    light = np.full((8, 16), 200, dtype=np.uint8)
    tensor = _run(
        _encode(light, "PNG"),
        size=(16, 16),
        color="L",
        layout="HW",
        datatype="UINT8",
        keep_aspect=True,
        pad_value=0,
        invert=True,
    )
    np.testing.assert_array_equal(tensor[4:12], 55)
    np.testing.assert_array_equal(tensor[:4], 0)
    np.testing.assert_array_equal(tensor[12:], 0)


def test_auto_invert_judges_the_image_not_the_letterbox_padding() -> None:
    # Dark ink on white paper, 16 wide x 8 high, letterboxed into 16x16 with black padding:
    # "auto" must see white paper and invert the ink, whatever colour the padding is.
    paper = _ink_on_paper(ink=0, paper=255, width=16, height=8)
    tensor = _run(
        _encode(paper, "PNG"),
        size=(16, 16),
        color="L",
        layout="HW",
        datatype="UINT8",
        keep_aspect=True,
        pad_value=0,
        invert="auto",
    )
    np.testing.assert_array_equal(tensor[4:12], 255 - paper)


# --- resize -----------------------------------------------------------------------------------


def _halves(width: int, height: int) -> np.ndarray:
    pixels = np.zeros((height, width), dtype=np.uint8)
    pixels[:, width // 2 :] = 255
    return pixels


def test_resize_stretches_by_default() -> None:
    tensor = _run(
        _encode(_halves(4, 2), "PNG"),
        size=(8, 8),
        color="L",
        layout="HW",
        resample="nearest",
        datatype="UINT8",
    )
    assert tensor.shape == (8, 8)
    np.testing.assert_array_equal(tensor[:, :4], 0)
    np.testing.assert_array_equal(tensor[:, 4:], 255)


def test_keep_aspect_letterboxes_with_pad_value() -> None:
    tensor = _run(
        _encode(_halves(4, 2), "PNG"),
        size=(8, 8),
        color="L",
        layout="HW",
        resample="nearest",
        datatype="UINT8",
        keep_aspect=True,
        pad_value=7,
    )
    # 4x2 scaled by 2 is 8x4, centred vertically: two rows of padding above and below.
    assert tensor.shape == (8, 8)
    np.testing.assert_array_equal(tensor[:2], 7)
    np.testing.assert_array_equal(tensor[6:], 7)
    np.testing.assert_array_equal(tensor[2:6, :4], 0)
    np.testing.assert_array_equal(tensor[2:6, 4:], 255)


def test_keep_aspect_pads_every_colour_channel() -> None:
    tall = np.full((8, 4, 3), 100, dtype=np.uint8)
    tensor = _run(
        _encode(tall, "PNG"),
        size=(8, 8),
        layout="HWC",
        datatype="UINT8",
        keep_aspect=True,
        pad_value=9,
        resample="nearest",
    )
    assert tensor.shape == (8, 8, 3)
    np.testing.assert_array_equal(tensor[:, :2], 9)
    np.testing.assert_array_equal(tensor[:, 6:], 9)
    np.testing.assert_array_equal(tensor[:, 2:6], 100)


def test_output_size_is_width_by_height() -> None:
    tensor = _run(_encode(_rgb(10, 10), "PNG"), size=(6, 4), layout="CHW")
    assert tensor.shape == (3, 4, 6)


# --- normalization, layout, datatype ----------------------------------------------------------


def test_scale_mean_std_per_channel() -> None:
    tensor = _run(
        _one_colour(51, 102, 204),
        size=(2, 2),
        layout="HWC",
        mean=[0.1, 0.2, 0.3],
        std=[0.5, 0.25, 0.2],
    )
    # (51/255 - 0.1) / 0.5, (102/255 - 0.2) / 0.25, (204/255 - 0.3) / 0.2
    np.testing.assert_allclose(tensor[0, 0], [0.2, 0.8, 2.5], rtol=1e-5)
    np.testing.assert_allclose(tensor[1, 1], [0.2, 0.8, 2.5], rtol=1e-5)


def test_single_mean_std_broadcast_and_custom_scale() -> None:
    grey = np.full((2, 2), 100, dtype=np.uint8)
    tensor = _run(_encode(grey, "PNG"), size=(2, 2), color="L", scale=0.01, mean=[0.5], std=[2.0])
    np.testing.assert_allclose(tensor, np.full((1, 2, 2), (1.0 - 0.5) / 2.0), rtol=1e-6)


def test_default_normalization_is_zero_to_one() -> None:
    tensor = _run(_one_colour(0, 255, 51), size=(2, 2), layout="CHW")
    np.testing.assert_allclose(tensor[:, 0, 0], [0.0, 1.0, 0.2], rtol=1e-6)


def test_layouts_hold_the_same_values() -> None:
    data = _encode(_rgb(3, 4, seed=9), "PNG")
    chw = _run(data, size=(4, 3), layout="CHW")
    hwc = _run(data, size=(4, 3), layout="HWC")
    assert chw.shape == (3, 3, 4)
    assert hwc.shape == (3, 4, 3)
    np.testing.assert_array_equal(chw, hwc.transpose(2, 0, 1))
    assert chw.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(
    ("layout", "shape"), [("HW", (3, 4)), ("HWC", (3, 4, 1)), ("CHW", (1, 3, 4))]
)
def test_grey_layouts(layout: str, shape: tuple[int, ...]) -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    tensor = _run(_encode(grey, "PNG"), size=(4, 3), color="L", layout=layout, **RAW)
    assert tensor.shape == shape
    np.testing.assert_array_equal(tensor.reshape(3, 4), grey.astype(np.float32))


def test_uint8_keeps_raw_pixels_and_ignores_normalization() -> None:
    pixels = _rgb(2, 3, seed=4)
    tensor = _run(
        _encode(pixels, "PNG"), size=(3, 2), layout="HWC", datatype="UINT8", mean=[0.5], std=[2.0]
    )
    assert tensor.dtype == np.uint8
    np.testing.assert_array_equal(tensor, pixels)


def test_fp16_datatype() -> None:
    tensor = _run(_one_colour(255, 0, 0), size=(2, 2), datatype="FP16")
    assert tensor.dtype == np.float16
    assert tensor[0, 0, 0] == 1.0 and tensor[1, 0, 0] == 0.0


# --- how the value arrives --------------------------------------------------------------------


def test_one_element_object_array_input() -> None:
    data = _one_colour(1, 2, 3)
    tensor = _run(np.array([data], dtype=np.object_), size=(2, 2), layout="HWC", **RAW)
    assert tensor[0, 0].tolist() == [1.0, 2.0, 3.0]


def test_other_item_values_pass_through() -> None:
    stage = ImageStage(type="image", size=(2, 2))
    extra = np.array([1.0])
    out = apply(image.build(stage, "img", "x"), {"img": _one_colour(1, 2, 3), "other": extra})
    assert set(out.values) == {"x", "other"}
    out = out.values
    assert out["other"] is extra


# --- geometry: where the original image landed on the model's input --------------------------


def _geometry(width: int, height: int, **options: Any) -> ImageGeometry:
    stage = ImageStage(type="image", **options)
    item = apply(
        image.build(stage, "img", "x"), {"img": _encode(np.zeros((height, width), np.uint8), "PNG")}
    )
    geometry = item.context["img"]
    assert isinstance(geometry, ImageGeometry)
    return geometry


def test_stretch_geometry_scales_each_axis() -> None:
    geometry = _geometry(40, 10, size=(20, 20))
    assert geometry == ImageGeometry(40, 10, 0.5, 2.0, 0.0, 0.0)


def test_letterbox_geometry_records_scale_and_padding() -> None:
    geometry = _geometry(200, 100, size=(100, 100), keep_aspect=True)
    assert geometry == ImageGeometry(200, 100, 0.5, 0.5, 0.0, 25.0)


def test_letterbox_geometry_maps_the_pasted_picture_back_to_the_whole_image() -> None:
    """The letterboxed picture's corners in model pixels are the original's corners."""
    geometry = _geometry(37, 91, size=(64, 64), keep_aspect=True)
    inner_w = round(37 * 64 / 91)
    left = (64 - inner_w) // 2
    corners = np.array([[left, 0.0, left + inner_w, 64.0]])
    np.testing.assert_allclose(geometry.to_original(corners), [[0.0, 0.0, 37.0, 91.0]])


def test_geometry_clips_boxes_to_the_original_image() -> None:
    geometry = _geometry(200, 100, size=(100, 100), keep_aspect=True)
    boxes = np.array([[-5.0, 10.0, 120.0, 90.0]])
    np.testing.assert_allclose(geometry.to_original(boxes), [[0.0, 0.0, 200.0, 100.0]])


# --- refusals ---------------------------------------------------------------------------------


def test_non_image_bytes() -> None:
    message = _error(b"this is plainly not an image")
    assert "input 'img' is not an image file Pillow can read" in message
    assert "PNG, JPEG" in message


def test_empty_bytes() -> None:
    assert _error(b"") == "input 'img' is empty; send the bytes of an image file (PNG, JPEG, ...)"


def test_truncated_png() -> None:
    whole = _encode(_rgb(32, 32, seed=5), "PNG")
    message = _error(whole[: len(whole) // 2])
    assert "input 'img' is a damaged or truncated image" in message


def test_too_many_pixels_for_the_stage_limit() -> None:
    message = _error(_encode(_rgb(10, 10), "PNG"), max_pixels=99)
    assert "10x10 image, over the limit of 99 pixels" in message
    assert "send a smaller image" in message


@pytest.mark.parametrize(("width", "height"), [(5000, 4000), (10_000, 10_000), (20_000, 10_000)])
def test_decompression_bomb_is_reported_as_too_many_pixels(width: int, height: int) -> None:
    # Over the default limit (4096 x 4096), then over Pillow's own bomb warning (89.5 MP),
    # then over its error (179 MP): the client is told the image is too large, never that it
    # is no image, and never with a 500.
    message = _error(_png_header_only(width, height))
    assert f"{width}x{height}" in message or f"{width * height} pixels" in message
    assert "over the limit of 16777216 pixels" in message or "decompression bomb" in message
    assert "not an image file" not in message


def test_pillows_own_guard_stays_on_and_no_stage_may_go_past_it() -> None:
    assert Image.MAX_IMAGE_PIXELS == 89_478_485
    with pytest.raises(ValidationError, match="less than or equal to 89478485"):
        ImageStage(type="image", size=(2, 2), max_pixels=100_000_000)


def test_missing_input() -> None:
    stage = ImageStage(type="image", size=(2, 2))
    with pytest.raises(BadRequestError) as caught:
        apply(image.build(stage, "img", "x"), {"other": b"x"})
    assert "the image stage needs input 'img'" in caught.value.message
    assert "['other']" in caught.value.message


def test_number_instead_of_bytes() -> None:
    message = _error(np.array([1.5]))
    assert "must be an image file (PNG, JPEG, ...) sent as BYTES" in message
    assert '{"b64": "<base64>"}' in message


def test_several_files_in_one_item() -> None:
    two = np.array([_one_colour(1, 1, 1), _one_colour(2, 2, 2)], dtype=np.object_)
    assert "must hold exactly one encoded file per item; got 2" in _error(two)
