"""Where training runs: `--device auto|cpu|cuda|cuda:N` resolved to one torch device.

Under torchrun a rank on CUDA takes cuda:LOCAL_RANK. A device this machine lacks is a
user error (one line, exit 2), raised before any data or model is loaded.
"""
from __future__ import annotations

import os

import torch

from .errors import TrainingError

CHOICES = "auto, cpu, cuda or cuda:N"


class DeviceError(TrainingError):
    """The requested device does not exist on this machine."""


def _no_cuda_reason() -> str:
    if torch.version.cuda is None:
        return f"this PyTorch ({torch.__version__}) is built without CUDA"
    return "no CUDA device is visible (driver missing, or CUDA_VISIBLE_DEVICES empty)"


def resolve(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch device of `spec`; raises DeviceError naming the problem and the fix."""
    spec = str(spec or "auto").strip().lower()
    local_rank = os.environ.get("LOCAL_RANK")
    if spec == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        spec = "cuda"
    if spec == "cpu":
        return torch.device("cpu")
    kind, _, index = spec.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise DeviceError(f"unknown device '{spec}'; use {CHOICES}")
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {spec}: {_no_cuda_reason()}; use --device cpu or auto")
    count = torch.cuda.device_count()
    n = int(index) if index else int(local_rank or 0)
    if n >= count:
        raise DeviceError(f"--device {spec}: this machine has {count} CUDA device"
                          f"{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})"
                          + ("" if index else f" but this rank's LOCAL_RANK is {n}")
                          + "; pick another index or --device cpu")
    return torch.device("cuda", n)


def prepare(device: torch.device) -> None:
    """Make `device` current and keep its float32 arithmetic IEEE (no TF32), so gradients
    match the CPU's to float32 rounding; spikes do not depend on it."""
    if device.type == "cuda":
        if device.index is not None:
            torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def model_device(model) -> torch.device:
    """The device a model's parameters live on (CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
