"""Reader of pickled numpy arrays that refuses every other class, so a dataset file cannot run code."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from .errors import DatasetError


class ArrayUnpickler(pickle.Unpickler):
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


def unpickle_arrays(raw: bytes, path: Path):
    """Unpickle ``raw`` (read from ``path``) with :class:`ArrayUnpickler`; any failure is a DatasetError naming ``path``."""
    try:
        return ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # any failure means the file is not the expected pickle
        raise DatasetError(f"cannot read {path}: {exc}; re-fetch the file") from None
