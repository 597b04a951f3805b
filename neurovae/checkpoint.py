"""Checkpoints: config, weights, optimizer state, epoch and RNG state in one file.

Written atomically; read with ``torch.load(weights_only=True)`` so a file from elsewhere
cannot run code, and validated so a foreign or corrupt file gives one clear error.
PyTorch's zip container has no integrity check of its own (a flipped bit in a weight
loads silently), so version 2 stores a SHA-256 digest of the whole content, checked on
load. Version 1 files (no digest) are still read. Tensors are stored on the CPU whatever
device trained them, so a checkpoint loads on any machine.
"""
from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import torch

from .config import Config, ConfigError
from .errors import CheckpointError
from .fileio import atomic_path
from .hw.clock import CLOCK

SPIKING = ("fsvae", "esvae")      # models whose weights are trained for one clock

FORMAT = "neurovae-checkpoint"
VERSION = 2
READS = (1, 2)
FILENAME = "checkpoint.pt"


def digest(state: dict) -> str:
    """SHA-256 of everything in `state` but its 'digest' entry, independent of pickling."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "digest"})
    return h.hexdigest()


def _feed(h, obj) -> None:
    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)};".encode())
        for key in sorted(obj, key=repr):
            h.update(f"{key!r}=".encode())
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)};".encode())
        for item in obj:
            _feed(h, item)
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def _on_cpu(obj):
    """`obj` with every tensor in it copied to the CPU (CPU tensors as they are)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return type(obj)((k, _on_cpu(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def save(path, *, cfg: Config, model, optimizer=None, epoch: int, metrics: list | None = None,
         extra: dict | None = None) -> None:
    state = {
        "format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "epoch": int(epoch),
        "clock": CLOCK,
        "model": _on_cpu(model.state_dict()),
        "optimizer": _on_cpu(optimizer.state_dict()) if optimizer is not None else None,
        "rng": torch.get_rng_state(), "metrics": list(metrics or []),
    }
    state.update(extra or {})
    state["digest"] = digest(state)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def resolve(path) -> Path:
    """A checkpoint file, or a run folder holding one."""
    p = Path(path)
    if p.is_dir():
        if not (p / FILENAME).exists() and (p / "config.json").exists():
            raise CheckpointError(f"{p} holds no checkpoint yet: its run stopped before the "
                                  f"first epoch ended; start it again without --resume")
        p = p / FILENAME
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}: give a run folder made by "
                              f"'neurovae train' or its {FILENAME}")
    if p.is_dir():
        raise CheckpointError(f"{p} is a folder, not a checkpoint file")
    return p


ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _not_an_archive(p: Path) -> str | None:
    """Why `p` is not a PyTorch zip archive, from its first bytes (None if it may be one).
    neurovae writes only archives, so anything else is refused before any unpickling."""
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if not head:
        return "the file is empty"
    if head.startswith(HDF5_MAGIC):
        return "it is an HDF5 file (a .net export?), not a checkpoint"
    if not head.startswith(ZIP_MAGIC):
        return "it is not a PyTorch checkpoint archive (damaged, or another kind of file)"
    return None


def _unreadable(exc: BaseException) -> str:
    """What is wrong with an archive torch.load refused, in words (never torch's advice to
    retry with weights_only=False)."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "weights_only" in text.lower().replace(" ", "_"):
        return ("it holds Python objects a checkpoint never contains, and unpickling them "
                "could run code: refused")
    if isinstance(exc, EOFError) or "central directory" in text:
        return "it is truncated"
    first = text.strip().splitlines()[0][:120] if text.strip() else type(exc).__name__
    return f"it is damaged ({type(exc).__name__}: {first})"


def load(path, map_location="cpu") -> dict:
    """Read and validate a checkpoint, its tensors on `map_location` (any device, whatever
    device wrote it); raises CheckpointError naming the problem."""
    p = resolve(path)
    why = _not_an_archive(p)
    if why is None:
        try:
            state = torch.load(p, map_location=map_location, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
                OSError, AttributeError, TypeError, KeyError, IndexError, MemoryError,
                OverflowError, UnicodeError, ImportError, AssertionError) as exc:
            why = _unreadable(exc)
    if why is not None:
        raise CheckpointError(f"{p} is not a readable neurovae checkpoint: {why}; retrain, "
                              f"or pass a checkpoint written by 'neurovae train'")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p} is a PyTorch file but not a neurovae checkpoint; "
                              f"pass a checkpoint written by 'neurovae train'")
    version = state.get("version")
    if version not in READS:
        newer = isinstance(version, int) and version > VERSION
        raise CheckpointError(f"{p} has checkpoint version {version!r}; this neurovae reads "
                              f"versions {READS[0]}-{READS[-1]}"
                              + ("; upgrade neurovae" if newer else "; the file is damaged"))
    if version >= 2:
        try:
            ok = state.get("digest") == digest(state)
        except Exception:   # noqa: BLE001 - any surprise in a damaged structure is damage
            ok = False
        if not ok:
            raise CheckpointError(f"{p} is damaged: its content does not match the digest "
                                  f"stored when it was written; retrain or use a backup")
    for key in ("config", "model", "epoch"):
        if key not in state:
            raise CheckpointError(f"{p} lacks '{key}'; the file is damaged")
    if not isinstance(state["epoch"], int) or state["epoch"] < 0:
        raise CheckpointError(f"{p} holds an invalid epoch {state['epoch']!r}")
    try:
        state["config"] = Config.from_dict(state["config"]).validate()
    except (ConfigError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{p} holds an invalid config ({exc})") from None
    if state["config"].model in SPIKING and state.get("clock") != CLOCK:
        raise CheckpointError(f"{p} holds a {state['config'].model} trained on the old single "
                              f"clock, which this neurovae no longer runs (it runs the "
                              f"'{CLOCK}' clock of stock Lava processes); retrain it with "
                              f"'neurovae train'")
    partial = state.get("partial")
    if partial is not None and not _valid_partial(partial):
        raise CheckpointError(f"{p} holds an invalid mid-epoch position; the file is damaged")
    return state


def _valid_partial(partial) -> bool:
    return (isinstance(partial, dict) and isinstance(partial.get("batch"), int)
            and partial["batch"] >= 0 and isinstance(partial.get("sums"), dict)
            and all(isinstance(v, float) for v in partial["sums"].values()))


def load_model(path, device=None):
    """Model in eval mode (on `device`, default the CPU) and its state from a checkpoint."""
    from .models import build_model
    state = load(path)
    model = build_model(state["config"])
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{resolve(path)}: weights do not fit the model its config "
                              f"describes ({str(exc).splitlines()[0][:160]})") from None
    model.eval()
    return (model if device is None else model.to(device)), state


def describe(state: dict) -> str:
    """Where a checkpoint stands, for messages: 'epoch 2' or 'epoch 3, batch 5'."""
    partial = state.get("partial")
    if partial:
        return f"epoch {state['epoch'] + 1}, batch {partial['batch']}"
    return f"epoch {state['epoch']}"

