"""The entry points callers use: load a split of a named dataset, its channel count, whether it trains with flips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .imageset import ImageSet
from .registry import SPLITS, lookup


def dataset_channels(name: str, data_dir: str | os.PathLike | None = None) -> int:
    """Number of image channels a dataset yields by default (1 or 3).

    For ``folder`` this needs ``data_dir`` (the image headers are inspected: 1 if all
    images are grayscale, else 3).
    """
    return lookup(name).channels(data_dir)


def load_images(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    channels: int | None = None,
) -> ImageSet:
    """Load one split of a dataset as an :class:`ImageSet` of uint8 ``(C, H, W)`` images.

    ``image_size=None`` keeps the native size (MNIST/Fashion-MNIST 28, CIFAR-10 32,
    CelebA 64 after a 148-px center crop); a larger size for 28-px MNIST-like images
    with an even difference is zero-padded symmetrically (28 -> 32 pads 2 per side),
    anything else is resized bilinearly with antialiasing.  ``channels`` converts
    1 <-> 3 (repeat or ITU-R 601 luminance).  For ``folder`` the split is ignored.
    Nothing is ever downloaded; decoded sets are cached per process (see ``clear_cache``).
    """
    source = lookup(name)
    split = _check_split(split)
    image_size = _check_size(image_size)
    channels = _check_channels(channels)
    root = None if data_dir is None else Path(os.path.expanduser(os.fspath(data_dir)))
    return source.load(split, root, image_size, channels)


def wants_flip(name: str) -> bool:
    """True for datasets trained with random horizontal flips (CIFAR-10 and CelebA)."""
    return lookup(name).flip


def _check_split(split: str) -> str:
    key = str(split).strip().lower()
    if key not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return key


def _check_size(image_size) -> int | None:
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise DatasetError(f"image_size must be a positive integer, got {image_size!r}")
    return int(image_size)


def _check_channels(channels) -> int | None:
    if channels is None:
        return None
    if isinstance(channels, bool) or channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels!r}")
    return int(channels)
