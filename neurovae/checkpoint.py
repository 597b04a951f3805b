"""Checkpoints: config, weights, optimizer state, epoch and RNG state in one file.

Written atomically; read with ``torch.load(weights_only=True)`` so a file from elsewhere
cannot run code, and validated so a foreign or corrupt file gives one clear error.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from .config import Config, ConfigError
from .errors import CheckpointError
from .fileio import atomic_path

FORMAT = "neurovae-checkpoint"
VERSION = 1
FILENAME = "checkpoint.pt"


def save(path, *, cfg: Config, model, optimizer=None, epoch: int, metrics: list | None = None,
         extra: dict | None = None) -> None:
    state = {
        "format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": torch.get_rng_state(), "metrics": list(metrics or []),
    }
    state.update(extra or {})
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def resolve(path) -> Path:
    """A checkpoint file, or a run folder holding one."""
    p = Path(path)
    if p.is_dir():
        p = p / FILENAME
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}: give a run folder made by "
                              f"'neurovae train' or its {FILENAME}")
    return p


def load(path) -> dict:
    """Read and validate a checkpoint; raises CheckpointError naming the problem."""
    p = resolve(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            OSError, AttributeError, TypeError, KeyError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{p} is not a readable neurovae checkpoint (corrupt, truncated, "
                              f"or unsafe to load: {first}); retrain or pass another file") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p} is a PyTorch file but not a neurovae checkpoint; "
                              f"pass a checkpoint written by 'neurovae train'")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{p} has checkpoint version {state.get('version')}, this "
                              f"neurovae reads version {VERSION}; upgrade neurovae")
    for key in ("config", "model", "epoch"):
        if key not in state:
            raise CheckpointError(f"{p} lacks '{key}'; the file is damaged")
    try:
        state["config"] = Config.from_dict(state["config"]).validate()
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{p} holds an invalid config ({exc})") from None
    return state


def load_model(path):
    """Model in eval mode and its config from a checkpoint."""
    from .models import build_model
    state = load(path)
    model = build_model(state["config"])
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{resolve(path)}: weights do not fit the model its config "
                              f"describes ({str(exc).splitlines()[0][:160]})") from None
    model.eval()
    return model, state
