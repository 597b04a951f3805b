"""What MNIST and Fashion-MNIST share: finding and reading an IDX folder, and the cached grayscale ImageSet built from it."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..cache import CACHE, signature
from ..errors import DatasetError
from ..idx import read_idx_images, read_idx_labels
from ..imageset import ImageSet
from ..registry import SPLITS
from ..transforms import convert_channels, fit

IMAGE_NAMES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
LABEL_NAMES = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}
# The image files, as named in "not found" messages.
FILES = f"{IMAGE_NAMES['train']}[.gz] and {IMAGE_NAMES['test']}[.gz]"


def search_dirs(root: Path | None, subfolders: Sequence[str]) -> list[Path]:
    """data_dir itself, then its conventional subfolders (none without a data_dir)."""
    return [] if root is None else [root] + [root / s for s in subfolders]


def where(root: Path | None, subfolders: Sequence[str]) -> str:
    """Where to put the IDX files, as said in "not found" messages."""
    return f"{root} (or {root}/{subfolders[0]}/)" if root is not None else "the folder given as --data-dir"


def load_idx_folder(name: str, split: str, dirs: Sequence[Path], image_size, channels) -> ImageSet | None:
    """The split from the first of ``dirs`` holding IDX image files (labels from its label files, if any); None if none does."""
    idx_dir = _find_idx_dir(dirs)
    if idx_dir is None:
        return None
    path = _idx_file(idx_dir, split, name)
    label_path = _idx_label_file(idx_dir, split)
    sources = (path,) if label_path is None else (path, label_path)
    key = (name, split, signature(*sources), image_size, channels)
    images = labels = None
    if key not in CACHE:
        images = read_idx_images(path)
        if images.shape[1] != images.shape[2]:
            raise DatasetError(f"{path} holds {images.shape[1]}x{images.shape[2]} images; only square images are supported")
        if images.shape[0] == 0:
            raise DatasetError(f"{path} holds no images; re-fetch it")
        if label_path is not None:
            labels = read_idx_labels(label_path)
            if labels.shape[0] != images.shape[0]:
                raise DatasetError(
                    f"{label_path} holds {labels.shape[0]} labels but {path.name} holds "
                    f"{images.shape[0]} images; re-fetch the matching files"
                )
    return mnist_like_set(name, split, key, images, image_size, channels, str(path), labels)


def mnist_like_set(name, split, key, images_nhw: np.ndarray | None, image_size, channels, source,
                   labels: np.ndarray | None = None) -> ImageSet:
    """ImageSet for (N,H,W) uint8 grayscale arrays (and optional (N,) labels), preprocessed once and cached under key."""
    cached = CACHE.get(key)
    if cached is None:
        data = torch.from_numpy(images_nhw).unsqueeze(1)
        data = fit(data, image_size, pad_ok=images_nhw.shape[1] == images_nhw.shape[2])
        data = convert_channels(data, channels)
        targets = None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.int64))
        cached = CACHE[key] = (data, targets)
    data, targets = cached
    return ImageSet(name, split, data.shape[1], data.shape[-1], data=data, source=source, targets=targets)


def _idx_candidates(directory: Path, split: str) -> list[Path]:
    base = IMAGE_NAMES[split]
    return [directory / base, directory / (base + ".gz")]


def _find_idx_dir(dirs: Sequence[Path]) -> Path | None:
    """First directory holding any IDX image file (train or test)."""
    for d in dirs:
        if any(p.is_file() for s in SPLITS for p in _idx_candidates(d, s)):
            return d
    return None


def _idx_file(directory: Path, split: str, name: str) -> Path:
    for p in _idx_candidates(directory, split):
        if p.is_file():
            return p
    base = IMAGE_NAMES[split]
    raise DatasetError(
        f"{name} {split} split missing: {directory} has IDX files but not {base} or {base}.gz; "
        f"add it next to the others"
    )


def _idx_label_file(directory: Path, split: str) -> Path | None:
    """The split's *-labels-idx1-ubyte[.gz] file in directory, or None (labels are optional)."""
    base = LABEL_NAMES[split]
    for p in (directory / base, directory / (base + ".gz")):
        if p.is_file():
            return p
    return None
