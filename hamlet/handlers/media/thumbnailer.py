"""Thumbnails with Pillow: choosing a size, and the blocking work of making one.

Everything that touches Pillow here blocks; the media repository runs it on
the CPU pool (`run_cpu`). Pillow is imported on first use, so a
homeserver that never makes a thumbnail never loads it.

Sizes are the spec's recommended set (Synapse's default `thumbnail_sizes`);
a request is answered with the best of them, so one media has at most five
thumbnails on disk whatever sizes clients ask for. Thumbnails are never
upscaled: where the original is already small enough, it is served as is.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from PIL import Image

Method = Literal["crop", "scale"]

# (width, height, method): the spec's recommended sizes.
THUMBNAIL_SIZES: Final[tuple[tuple[int, int, Method], ...]] = (
    (32, 32, "crop"),
    (96, 96, "crop"),
    (320, 240, "scale"),
    (640, 480, "scale"),
    (800, 600, "scale"),
)

# Media types we thumbnail, and the thumbnail type each gets. The decoders
# of these formats are all Pillow may use (its other decoders are attack
# surface we do not need).
THUMBNAIL_TYPES: Final = {
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "image/png": "image/png",
    "image/gif": "image/png",
    "image/webp": "image/png",
}
_PILLOW_FORMATS: Final = ("JPEG", "PNG", "GIF", "WEBP")
_ENCODERS: Final = {"image/jpeg": "JPEG", "image/png": "PNG"}

# Synapse's `max_image_pixels` default: bigger images are not decoded at all.
MAX_IMAGE_PIXELS: Final = 32 * 1024 * 1024

_EXIF_ORIENTATION: Final = 0x0112


class ThumbnailError(Exception):
    """The file could not be decoded as an image of an allowed format."""


class ImageTooLargeError(ThumbnailError):
    """The image has more pixels than we are willing to decode."""


def select_size(width: int, height: int, method: Method) -> tuple[int, int, Method]:
    """The configured size that best serves a request for at least `width`x`height`.

    Among the sizes of the requested method that are at least as big in
    both dimensions, the closest in aspect and then the smallest; if none is
    big enough, the biggest.
    """
    sizes = [s for s in THUMBNAIL_SIZES if s[2] == method]
    big = [s for s in sizes if s[0] >= width and s[1] >= height]
    if big:
        return min(big, key=lambda s: (abs(width * s[1] - height * s[0]), s[0] * s[1]))
    return max(sizes, key=lambda s: s[0] * s[1])


@dataclass(frozen=True, slots=True)
class Plan:
    """What to make of an original: the part of it to use and the output size."""

    box: tuple[int, int, int, int]  # left, top, right, bottom in the (oriented) original
    size: tuple[int, int]
    keep_original: bool  # the original already is the answer: serve it unchanged


def plan(orig_w: int, orig_h: int, width: int, height: int, method: Method) -> Plan:
    """Where the thumbnail comes from and how big it is; never bigger than the original."""
    full = (0, 0, orig_w, orig_h)
    if method == "scale":
        if orig_w <= width and orig_h <= height:
            return Plan(full, (orig_w, orig_h), True)
        if width * orig_h < height * orig_w:
            size = (width, max(1, width * orig_h // orig_w))
        else:
            size = (max(1, height * orig_w // orig_h), height)
        return Plan(full, size, False)
    # crop: the largest centred box of the requested aspect, scaled down to it.
    if orig_w * height > orig_h * width:
        box_w, box_h = max(1, orig_h * width // height), orig_h
    else:
        box_w, box_h = orig_w, max(1, orig_w * height // width)
    left, top = (orig_w - box_w) // 2, (orig_h - box_h) // 2
    box = (left, top, left + box_w, top + box_h)
    # Smaller than asked: crop only, no upscaling.
    size = (width, height) if box_w >= width and box_h >= height else (box_w, box_h)
    return Plan(box, size, size == (orig_w, orig_h))


def render(source: Path, width: int, height: int, method: Method, out_type: str) -> bytes | None:
    """The encoded thumbnail, or None when the original should be served as is.

    Blocking and CPU-bound: run it on the CPU pool.
    """
    from PIL import Image, ImageOps

    encoder = _ENCODERS[out_type]
    try:
        with Image.open(source, formats=_PILLOW_FORMATS) as img:
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ImageTooLargeError(f"{w}x{h} is too many pixels")
            try:
                orientation = img.getexif().get(_EXIF_ORIENTATION)
            except Exception:  # EXIF parsing fails in many ways; ignore it then
                orientation = None
            if orientation in (5, 6, 7, 8):
                w, h = h, w
            p = plan(w, h, width, height, method)
            if p.keep_original:
                return None
            img.load()
            oriented: Image.Image = img
            if orientation not in (None, 1):
                try:
                    oriented = ImageOps.exif_transpose(img)
                except Exception:
                    oriented = img
            converted = _convert(oriented, encoder)
            out = converted.resize(p.size, Image.Resampling.LANCZOS, box=p.box)
            buf = io.BytesIO()
            if encoder == "JPEG":
                out.save(buf, "JPEG", quality=80)
            else:
                out.save(buf, "PNG")
            return buf.getvalue()
    except ThumbnailError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(str(e)) from e
    except Exception as e:  # Pillow raises many kinds for a broken file
        raise ThumbnailError(f"cannot decode image: {e}") from e


def _convert(img: Image.Image, encoder: str) -> Image.Image:
    """A mode both resizing and the encoder handle well (RGB, or RGBA for PNG with alpha)."""
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    if encoder == "PNG" and has_alpha:
        return img if img.mode == "RGBA" else img.convert("RGBA")
    return img if img.mode == "RGB" else img.convert("RGB")
