"""Files a command writes: checked before any long work starts, written atomically."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import NeurovaeError
from .fileio import atomic_path, unwritable_reason, write_text


def check_output(path) -> Path:
    """The output path as a Path, or a NeurovaeError if it cannot be written (checked
    before any work, with a probe file: permission bits say nothing for root)."""
    out = Path(path)
    if out.is_dir():
        raise NeurovaeError(f"cannot write {out}: it is a folder; give a file name")
    reason = unwritable_reason(out.parent)
    if reason:
        raise NeurovaeError(f"cannot write {out}: {reason}; choose another output path")
    return out


def save_npy(array, path) -> None:
    """Save a numpy array as .npy, atomically."""
    import numpy as np
    with atomic_path(path, ".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def write_json(obj, path) -> None:
    """Write `obj` as indented JSON, atomically."""
    write_text(path, json.dumps(obj, indent=1) + "\n")
