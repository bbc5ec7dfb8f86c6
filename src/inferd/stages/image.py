"""Image preprocessing: any file Pillow reads → the tensor a vision model expects.

Decodes PNG/JPEG/WebP/..., applies EXIF orientation, converts colour, optionally inverts
(dark ink on white paper vs. the light-on-dark a model was trained on), resizes (stretch or
letterbox), normalizes and lays out the channels.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inferd.datatypes import numpy_dtype
from inferd.errors import BadRequestError
from inferd.spec import ImageStage
from inferd.stages import Item, Preprocess, only_value

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def encoded_bytes(value: Any, name: str) -> bytes:
    """The raw file bytes of a BYTES input, whether sent as bytes or a 1-element tensor."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise BadRequestError(
                f"input {name!r} must hold exactly one encoded file per item; got {value.size}"
            )
        value = value.reshape(-1)[0]
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise BadRequestError(
            f"input {name!r} must be an encoded file (PNG, JPEG, ...) sent as BYTES "
            'or, in a V1 instance, as {"b64": "<base64>"}'
        )
    if len(value) == 0:
        raise BadRequestError(f"input {name!r} is empty; send the bytes of an image file")
    return bytes(value)


def decode_image(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open an image, refusing non-images and decompression bombs with a 400."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
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
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadRequestError(
            f"input {name!r} is not an image file Pillow can read; send PNG, JPEG, WebP, "
            "BMP, GIF or TIFF bytes"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise BadRequestError(f"input {name!r} is a damaged or truncated image: {error}") from None
    return ImageOps.exif_transpose(image)


def _resize(image: Image.Image, stage: ImageStage) -> Image.Image:
    width, height = stage.size
    resample = _RESAMPLE[stage.resample]
    if not stage.keep_aspect:
        return image.resize((width, height), resample)
    scale = min(width / image.width, height / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    fill: int | tuple[int, ...] = (
        stage.pad_value if image.mode == "L" else (stage.pad_value,) * len(image.getbands())
    )
    canvas = Image.new(image.mode, (width, height), fill)
    canvas.paste(image.resize(inner, resample), ((width - inner[0]) // 2, (height - inner[1]) // 2))
    return canvas


def _border_is_light(pixels: np.ndarray) -> bool:
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

    def preprocess(item: Item) -> Item:
        data = encoded_bytes(only_value(item, input_name, "the image stage"), input_name)
        image = decode_image(data, input_name, stage.max_pixels)
        if image.mode != mode:
            image = image.convert(mode)
        pixels = np.asarray(_resize(image, stage))
        if stage.invert is True or (stage.invert == "auto" and _border_is_light(pixels)):
            pixels = 255 - pixels
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
        out = {k: v for k, v in item.items() if k != input_name}
        out[output_name] = np.ascontiguousarray(tensor)
        return out

    return preprocess
