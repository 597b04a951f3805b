"""The dataset split type every source returns: uint8 ``(C, H, W)`` images, in memory or decoded lazily, with optional labels."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DatasetError


class ImageSet(Dataset):
    """A dataset split whose items are uint8 ``(C, H, W)`` tensors (items carry no labels).

    Either holds all images in one uint8 tensor (``in_memory``) or decodes each item
    from a file on access (CelebA); ``tensor(indices)`` returns a ``(B, C, H, W)`` batch.
    Optional class labels (``targets``, int64 ``(N,)``, in image order) are read with
    ``labels(indices)``, which takes the same indices as ``tensor``.
    """

    def __init__(
        self,
        name: str,
        split: str,
        channels: int,
        image_size: int,
        data: torch.Tensor | None = None,
        paths: Sequence[Path] | None = None,
        load_item: Callable[[Path], torch.Tensor] | None = None,
        source: str = "",
        targets: np.ndarray | torch.Tensor | None = None,
    ):
        if (data is None) == (paths is None):
            raise ValueError("ImageSet needs exactly one of data or paths")
        if paths is not None and load_item is None:
            raise ValueError("ImageSet with paths needs load_item")
        self.name = name
        self.split = split
        self.channels = int(channels)
        self.image_size = int(image_size)
        self.source = source
        self._data = data
        self._paths = tuple(paths) if paths is not None else None
        self._load_item = load_item
        self._targets = None
        if targets is not None:
            t = torch.as_tensor(targets)
            if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
                raise ValueError(f"ImageSet targets must be integers, got {t.dtype}")
            if t.dim() != 1 or t.shape[0] != len(self):
                raise ValueError(f"ImageSet targets must have shape ({len(self)},), got {tuple(t.shape)}")
            self._targets = t.to(torch.int64).cpu()

    @property
    def has_labels(self) -> bool:
        """True when the set carries class labels (see :meth:`labels`)."""
        return self._targets is not None

    @property
    def in_memory(self) -> bool:
        """True when every image is already decoded into one tensor."""
        return self._data is not None

    def __len__(self) -> int:
        return int(self._data.shape[0]) if self._data is not None else len(self._paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._data is not None:
            return self._data[index].clone()
        return self._load_item(self._paths[index])

    def tensor(self, indices) -> torch.Tensor:
        """Batch of images ``(B, C, H, W)`` uint8 for a sequence, tensor, range or slice of indices (always a copy)."""
        idx = self._index_tensor(indices)
        if self._data is not None:
            return self._data[idx]
        if idx.numel() == 0:
            return torch.empty((0, self.channels, self.image_size, self.image_size), dtype=torch.uint8)
        return torch.stack([self._load_item(self._paths[i]) for i in idx.tolist()])

    def labels(self, indices) -> torch.LongTensor:
        """Class labels (int64, shape ``(B,)``) for the same kinds of indices as :meth:`tensor` (always a copy).

        Raises DatasetError when the set has no labels (CelebA, image folders, IDX
        folders without ``*-labels-idx1-ubyte`` files).
        """
        if self._targets is None:
            raise DatasetError(
                f"{self.name} has no class labels ({self.split} split from {self.source or 'memory'}); "
                "labels come with mnist, fashion-mnist (IDX *-labels-idx1-ubyte files next to the "
                "images) and cifar10"
            )
        return self._targets[self._index_tensor(indices)]

    def _index_tensor(self, indices) -> torch.Tensor:
        n = len(self)
        if isinstance(indices, slice):
            return torch.arange(n)[indices]
        idx = torch.as_tensor(indices).long().reshape(-1).cpu()
        if idx.numel() and (int(idx.max()) >= n or int(idx.min()) < -n):
            raise IndexError(f"index out of range for {self.name} {self.split} with {n} images")
        return torch.where(idx < 0, idx + n, idx)

    def __repr__(self) -> str:
        kind = "in memory" if self.in_memory else "lazy"
        labelled = ", labelled" if self.has_labels else ""
        return (
            f"ImageSet(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"channels={self.channels}, image_size={self.image_size}, {kind}{labelled})"
        )
