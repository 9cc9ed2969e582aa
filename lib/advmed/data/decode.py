"""Decoding one image to a ``uint8 (C, size, size)`` array.

Resizing uses Pillow's bilinear filter, which is antialiased when shrinking (Pillow
widens the filter support by the scale factor), so a 2000 px radiograph reduced to
64 px does not alias. For JPEG, ``Image.draft`` first lets libjpeg decode at 1/2, 1/4
or 1/8 scale (never below the target size), which makes full-resolution originals
several times faster to decode; in ``L`` mode it decodes the luma channel only.

Rules (``DatasetSpec.resize``):
- ``squash``: resize to ``size x size`` ignoring aspect, as the mirror's redistributors
  did for Kermany and HAM10000 (so local and downloaded copies look alike).
- ``short_side_crop``: resize the short side to ``round(size * 256 / 224)`` and crop the
  centre ``size x size`` (the ImageNet evaluation transform; size 224 -> 256 then 224).

Channels: ``1`` converts to luminance (ITU-R 601-2, Pillow's ``L``:
0.299 R + 0.587 G + 0.114 B); ``3`` converts to RGB (grey images replicated).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .errors import UnreadableImageError

RESIZE_RULES = ("squash", "short_side_crop")


def short_side(size: int) -> int:
    """Short side before the centre crop: round(size * 256 / 224) (224 -> 256, 64 -> 73)."""
    return int(round(size * 256 / 224))


def to_array(img: Image.Image, size: int, channels: int, rule: str) -> np.ndarray:
    """Resize and convert a PIL image; returns uint8 ``(channels, size, size)``."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    mode = "L" if channels == 1 else "RGB"
    if rule == "squash":
        if img.format == "JPEG":
            img.draft(mode, (size, size))
        img = img.convert(mode)
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
    elif rule == "short_side_crop":
        s = short_side(size)
        if img.format == "JPEG":
            img.draft(mode, (s, s))
        img = img.convert(mode)
        w, h = img.size
        scale = s / min(w, h)
        new = (s, max(s, int(round(h * scale)))) if w <= h else (max(s, int(round(w * scale))), s)
        if new != (w, h):
            img = img.resize(new, Image.BILINEAR)
        # Centre crop with torchvision's rounding: offset = round((side - size) / 2).
        left = int(round((new[0] - size) / 2.0))
        top = int(round((new[1] - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    else:
        raise ValueError(f"unknown resize rule {rule!r}; valid rules: {', '.join(RESIZE_RULES)}")
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def decode_bytes(data: bytes, where: str, size: int, channels: int, rule: str) -> np.ndarray:
    """Decode an encoded image (JPEG/PNG bytes); ``where`` names it in errors."""
    try:
        img = Image.open(io.BytesIO(data))
        return to_array(img, size, channels, rule)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UnreadableImageError(
            f"cannot decode image {where}: {e}. The file is damaged or not an image; restore it "
            f"(local mirror) or delete the download so that it is fetched again."
        ) from e


def decode_array(arr: np.ndarray, size: int, channels: int, rule: str) -> np.ndarray:
    """Resize a decoded uint8 image array (H, W) or (H, W, 3), e.g. from a MedMNIST npz."""
    return to_array(Image.fromarray(np.ascontiguousarray(arr)), size, channels, rule)
