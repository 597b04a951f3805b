"""Atomic file writes: write to a temporary name in the same folder, then rename.

A process killed mid-write (even with SIGKILL) leaves the previous file intact and at most
a hidden temporary ``.<name>.<random>.tmp<suffix>`` beside it, which
:func:`remove_stale_temps` clears on the next run.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TEMP_MARK = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path beside `path`; on success rename it over `path`, else delete it.

    `suffix` ends the temporary name (for writers that look at the extension).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_MARK + suffix,
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
        _fsync_dir(path.parent)         # the rename itself survives a crash
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with `text` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def remove_stale_temps(folder: str | os.PathLike, names) -> list[Path]:
    """Delete temporaries that a killed writer of `names` (files in `folder`) left behind."""
    removed = []
    folder = Path(folder)
    for name in names:
        for p in folder.glob(f".{name}.*{TEMP_MARK}*"):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def unwritable_reason(folder: str | os.PathLike) -> str | None:
    """Why files cannot be created in `folder` (None when they can).

    Creates and deletes a probe file: permission bits alone say nothing for root or on a
    read-only file system.
    """
    folder = Path(folder)
    if not folder.exists():
        return f"folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".neurovae-probe.", dir=folder)
    except OSError as exc:
        return f"folder {folder} is not writable ({exc.strerror or exc})"
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def existing_ancestor(path: str | os.PathLike) -> Path:
    """The nearest folder above (or at) `path` that exists: where `mkdir -p` would start."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p
