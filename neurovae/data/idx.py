"""Reader of IDX files (the MNIST file format, optionally gzipped) into numpy arrays, with one-line errors."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DatasetError


def _read_idx_bytes(path: Path) -> bytes:
    """The bytes of an IDX file, gunzipped when gzipped."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read IDX file {path}: {exc}; re-fetch or re-extract it") from None
    return raw


def _read_idx(path: Path, magic: int, dims: int, kind: str, other: str, pattern: str):
    """(payload bytes, sizes) of an IDX file whose header is `magic` then `dims` sizes;
    `kind` names it in errors ("image", "label"), `other` the file it is mistaken for."""
    raw = _read_idx_bytes(path)
    head = 4 + 4 * dims
    if len(raw) < head:
        raise DatasetError(f"IDX file {path} is truncated ({len(raw)} bytes, no complete header); re-fetch it")
    found, *sizes = struct.unpack(">" + "I" * (1 + dims), raw[:head])
    if found != magic:
        raise DatasetError(
            f"{path} is not an IDX {kind} file (magic 0x{found:08x}, expected 0x{magic:08x} = uint8, "
            f"{dims} dim{'s' if dims > 1 else ''}); pass the {pattern} file, not {other} file"
        )
    expected = head + int(np.prod(sizes))
    if len(raw) != expected:
        what = (f"{sizes[0]} images of {sizes[1]}x{sizes[2]}" if dims == 3
                else f"{sizes[0]} labels")
        raise DatasetError(
            f"IDX file {path} is corrupt: header says {what} ({expected} bytes) "
            f"but the data is {len(raw)} bytes; re-fetch it"
        )
    return raw[head:], sizes


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX image file (magic 0x00000803, optionally gzipped) as a uint8 array ``(N, H, W)``.

    Raises DatasetError on a wrong magic number, a size mismatch or a broken gzip stream.
    """
    body, (n, h, w) = _read_idx(Path(path), 0x00000803, 3, "image", "a labels",
                                "*-images-idx3-ubyte")
    return np.frombuffer(body, dtype=np.uint8).reshape(n, h, w).copy()


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX label file (magic 0x00000801, optionally gzipped) as an int64 array ``(N,)``.

    Raises DatasetError on a wrong magic number, a size mismatch or a broken gzip stream.
    """
    body, _ = _read_idx(Path(path), 0x00000801, 1, "label", "an images", "*-labels-idx1-ubyte")
    return np.frombuffer(body, dtype=np.uint8).astype(np.int64)
