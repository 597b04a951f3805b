"""The registry of data sources: each source module registers its loader under a dataset name, so adding a source is adding a module."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import DatasetError

if TYPE_CHECKING:
    from .imageset import ImageSet

SPLITS = ("train", "test")

# A loader: (split, data_dir as an expanded Path or None, image_size or None, channels or None) -> ImageSet;
# split, image_size and channels are already validated.
Loader = Callable[[str, Path | None, int | None, int | None], "ImageSet"]


@dataclass(frozen=True)
class Source:
    """One registered dataset: its loader, its default channel count (from data_dir) and whether training flips it."""

    name: str
    load: Loader
    channels: Callable[[str | os.PathLike | None], int]
    flip: bool = False


# Dataset name -> Source, in registration order (the order names are listed in messages).
DATASETS: dict[str, Source] = {}


def register(name: str, *, channels: int | Callable[[str | os.PathLike | None], int], flip: bool = False):
    """Decorator registering a loader as dataset ``name``.

    ``channels`` is the default channel count, or a function of ``data_dir`` computing it;
    ``flip`` marks datasets trained with random horizontal flips.
    """
    def decorate(load: Loader) -> Loader:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        count = channels if callable(channels) else (lambda data_dir, n=int(channels): n)
        DATASETS[name] = Source(name, load, count, flip)
        return load

    return decorate


def lookup(name: str) -> Source:
    """The source registered as ``name`` (case-insensitive, '_' and '-' alike); DatasetError listing the valid names otherwise."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[key]
