"""Image preprocessing: any file Pillow reads → the tensor a vision model expects.

Each image stage refuses images over its `max_pixels` from the header, before decoding; and
Pillow's process-wide decompression-bomb guard stays on behind it.

Decodes PNG/JPEG/WebP/..., applies EXIF orientation, converts colour, optionally inverts
(dark ink on white paper vs. the light-on-dark a model was trained on), resizes (stretch or
letterbox), normalizes and lays out the channels.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inferd.datatypes import numpy_dtype
from inferd.errors import BadRequestError
from inferd.spec import ImageStage
from inferd.stages import ImageGeometry, Item, Preprocess, encoded_bytes, only_value

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def decode_image(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open an image, refusing non-images and decompression bombs with a 400."""
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise BadRequestError(
                f"input {name!r} is a {width}x{height} image, over the limit of "
                f"{max_pixels} pixels; send a smaller image"
            )
        image.load()
    except BadRequestError:
        raise
    except UnidentifiedImageError:
        raise BadRequestError(
            f"input {name!r} is not an image file Pillow can read; send PNG, JPEG, WebP, "
            "BMP, GIF or TIFF bytes"
        ) from None
    except Image.DecompressionBombError as error:  # Pillow's own guard, behind ours
        raise BadRequestError(
            f"input {name!r} is refused as a decompression bomb: {error}"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise BadRequestError(f"input {name!r} is a damaged or truncated image: {error}") from None
    return ImageOps.exif_transpose(image)


def to_mode(image: Image.Image, mode: str, name: str) -> Image.Image:
    """Convert to L or RGB the way a person would expect, not the way Pillow clips.

    16-bit and float greys are scaled down to 8 bits (Pillow would clip them to white), and
    transparent images are laid on white paper (Pillow would turn transparent pixels black).
    A colour mode Pillow cannot convert (CIELab to grey) is refused for input `name`.
    """
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        grey = np.asarray(image, dtype=np.float64)
        if image.mode != "F" and grey.max(initial=0) > 255:
            grey = grey / 257.0
        image = Image.fromarray(np.clip(grey, 0, 255).round().astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    if image.mode == mode:
        return image
    try:
        return image.convert(mode)
    except ValueError:  # e.g. "conversion from LAB to RGB not supported" (CIELab TIFFs to L)
        raise BadRequestError(
            f"input {name!r} is a {image.mode} image, which cannot be converted to {mode}; "
            "send RGB or greyscale pixels"
        ) from None


def _resize(image: Image.Image, stage: ImageStage) -> tuple[Image.Image, ImageGeometry]:
    """The resized (or letterboxed) image, and where the original landed on it."""
    width, height = stage.size
    resample = _RESAMPLE[stage.resample]
    if not stage.keep_aspect:
        geometry = ImageGeometry(
            image.width, image.height, width / image.width, height / image.height, 0.0, 0.0
        )
        return image.resize((width, height), resample), geometry
    scale = min(width / image.width, height / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    fill: int | tuple[int, ...] = (
        stage.pad_value if image.mode == "L" else (stage.pad_value,) * len(image.getbands())
    )
    canvas = Image.new(image.mode, (width, height), fill)
    offset = ((width - inner[0]) // 2, (height - inner[1]) // 2)
    canvas.paste(image.resize(inner, resample), offset)
    geometry = ImageGeometry(
        image.width,
        image.height,
        inner[0] / image.width,
        inner[1] / image.height,
        float(offset[0]),
        float(offset[1]),
    )
    return canvas, geometry


def _border_is_light(image: Image.Image) -> bool:
    pixels = np.asarray(image)
    border = np.concatenate(
        [pixels[0].ravel(), pixels[-1].ravel(), pixels[:, 0].ravel(), pixels[:, -1].ravel()]
    )
    return float(border.mean()) > 127.0


def build(stage: ImageStage, input_name: str, output_name: str) -> Preprocess:
    """A preprocess function for one image input; configuration is checked once, here."""
    mode = "L" if stage.color == "L" else "RGB"
    mean = np.asarray(stage.mean, dtype=np.float32)
    std = np.asarray(stage.std, dtype=np.float32)
    dtype = numpy_dtype(stage.datatype)

    def preprocess(item: Item) -> None:
        data = encoded_bytes(
            only_value(item.values, input_name, "the image stage"),
            input_name,
            "an image file (PNG, JPEG, ...)",
        )
        image = to_mode(decode_image(data, input_name, stage.max_pixels), mode, input_name)
        # Invert before resizing, so letterbox padding keeps its value and "auto" judges
        # the picture itself.
        if stage.invert is True or (stage.invert == "auto" and _border_is_light(image)):
            image = ImageOps.invert(image)
        resized, geometry = _resize(image, stage)
        pixels = np.asarray(resized)
        if stage.color == "BGR":
            pixels = pixels[..., ::-1]
        if stage.datatype == "UINT8":
            tensor = np.ascontiguousarray(pixels, dtype=np.uint8)
        else:
            scaled = pixels.astype(np.float32) * np.float32(stage.scale)
            scaled = (scaled - mean) / std
            tensor = scaled.astype(dtype, copy=False)
        if stage.layout == "CHW":
            tensor = tensor[np.newaxis] if tensor.ndim == 2 else tensor.transpose(2, 0, 1)
        elif stage.layout == "HWC" and tensor.ndim == 2:
            tensor = tensor[..., np.newaxis]
        out = {k: v for k, v in item.values.items() if k != input_name}
        out[output_name] = np.ascontiguousarray(tensor)
        item.values = out
        item.context[input_name] = geometry

    return preprocess
