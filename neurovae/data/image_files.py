"""Decoding of image files (png, jpg, bmp, gif, ...) into uint8 tensors; a file that cannot be decoded is a one-line DatasetError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import DatasetError

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _cannot_decode(path: Path, exc: Exception) -> DatasetError:
    return DatasetError(f"cannot decode image {path}: {exc}; remove or replace it")


def is_gray(path: Path) -> bool:
    """Whether an image is grayscale, from its header (palette images: gray palette)."""
    try:
        with Image.open(path) as img:
            if img.mode in _GRAY_MODES:
                return True
            if img.mode == "P":
                pal = img.getpalette() or []
                return all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))
            return False
    except _DECODE_ERRORS as exc:
        raise _cannot_decode(path, exc) from None


def open_image(path: Path, mode: str) -> Image.Image:
    """Decode an image file to PIL mode 'L' or 'RGB' (16-bit grayscale scaled to 8 bits)."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode.startswith("I;16") or img.mode == "I":
                arr = np.asarray(img).astype(np.float64)
                img = Image.fromarray(np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8), "L")
            elif img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            return img.convert(mode)
    except _DECODE_ERRORS as exc:
        raise _cannot_decode(path, exc) from None


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image as a uint8 ``(C, H, W)`` tensor (C = 1 for 'L', 3 for 'RGB')."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def header_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only."""
    try:
        with Image.open(path) as img:
            return img.size
    except _DECODE_ERRORS as exc:
        raise _cannot_decode(path, exc) from None
