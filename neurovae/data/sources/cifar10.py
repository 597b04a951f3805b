"""CIFAR-10: the python batches of cifar-10-python.tar.gz, extracted under data_dir in the usual cifar-10-batches-py layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..cache import CACHE, signature
from ..errors import DatasetError
from ..imageset import ImageSet
from ..registry import register
from ..safe_pickle import unpickle_arrays
from ..transforms import convert_channels, fit

_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCHES = ("test_batch",)


@register("cifar10", channels=3, flip=True)
def load(split: str, root: Path | None, image_size, channels) -> ImageSet:
    """The split from the python batches in data_dir/cifar-10-batches-py/ (or data_dir itself), labels included."""
    names = _TRAIN_BATCHES if split == "train" else _TEST_BATCHES
    layout = (
        "<data-dir>/cifar-10-batches-py/ holding data_batch_1 ... data_batch_5, test_batch and "
        "batches.meta (torchvision's CIFAR10 layout, the extracted cifar-10-python.tar.gz); "
        "nothing is downloaded"
    )
    if root is None:
        raise DatasetError(f"cifar10 needs --data-dir: expected {layout}")
    if not root.is_dir():
        raise DatasetError(f"CIFAR-10 data dir {root} does not exist; expected {layout}")
    batch_dir = root / "cifar-10-batches-py"
    if not batch_dir.is_dir() and (root / names[0]).is_file():
        batch_dir = root  # data_dir points at the batches folder itself
    missing = [n for n in names if not (batch_dir / n).is_file()]
    if missing:
        raise DatasetError(
            f"CIFAR-10 {split} split not found in {root}: missing {', '.join(missing)}; expected {layout}"
        )
    paths = [batch_dir / n for n in names]
    key = ("cifar10", split, signature(*paths), image_size, channels)
    cached = CACHE.get(key)
    if cached is None:
        batches = [_read_batch(p) for p in paths]
        data = torch.from_numpy(np.concatenate([x for x, _ in batches])).reshape(-1, 3, 32, 32)
        data = convert_channels(fit(data, image_size, pad_ok=False), channels)
        targets = torch.from_numpy(np.concatenate([y for _, y in batches]))
        cached = CACHE[key] = (data, targets)
    data, targets = cached
    return ImageSet("cifar10", split, data.shape[1], data.shape[-1], data=data, source=str(batch_dir),
                    targets=targets)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 3072) uint8 and labels (n,) int64 of one CIFAR-10 python batch (a pickled dict with 'data' and 'labels')."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    obj = unpickle_arrays(raw, path)
    data = labels = None
    if isinstance(obj, dict):
        data = obj.get(b"data", obj.get("data"))
        labels = obj.get(b"labels", obj.get("labels"))
    if isinstance(data, np.ndarray) and labels is not None:
        try:
            labels = np.asarray(labels)
        except (TypeError, ValueError):
            labels = None
        if labels is not None and labels.size == 0:
            labels = labels.astype(np.int64)  # np.asarray([]) is float64
    if (
        not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072
        or not isinstance(labels, np.ndarray) or labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu"
    ):
        raise DatasetError(
            f"{path} is not a CIFAR-10 python batch (expected a dict with 'data': uint8 array (n, 3072) "
            "and 'labels': n integers); re-extract cifar-10-python.tar.gz"
        )
    return data, labels.astype(np.int64)
