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
