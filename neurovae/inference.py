"""`neurovae generate` and `neurovae reconstruct` without the command line: run a `.net`
file on a backend and write the PNG grid (and optionally the images as .npy)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .outputs import check_output, save_npy


@dataclass
class RunResult:
    """Images a backend made (float64 in [-1, 1], (n, C, H, W)) and where they went."""

    images: torch.Tensor
    backend: str
    seed: int
    seconds: float
    output: Path
    npy: Path | None = None
    originals: torch.Tensor | None = None   # reconstruct: the input bytes
    mse: float | None = None                # reconstruct: against the inputs in [-1, 1]

    @property
    def n(self) -> int:
        return len(self.images)


def _outputs(output, npy):
    out = check_output(output)
    return out, (check_output(npy) if npy else None)


def generate(netfile, n: int = 64, *, seed: int | None = None, backend: str = "lava-sim",
             output="samples.png", npy=None, timeout: float | None = None,
             progress: bool = True) -> RunResult:
    """Generate `n` images from the prior of the model in `netfile` (seed: the file's by
    default) and save them as a PNG grid."""
    from . import plots
    from .export import load
    from .loihi_runtime import run
    out, npy = _outputs(output, npy)
    net = load(netfile)
    seed = net.seed if seed is None else seed
    t0 = time.time()
    images, _ = run(net, backend, n=n, seed=seed, progress=progress, timeout=timeout)
    plots.save_grid(images.float(), out)
    if npy:
        save_npy(images.numpy(), npy)
    return RunResult(images, backend, seed, time.time() - t0, out, npy)


def reconstruct(netfile, n: int = 16, *, seed: int | None = None, backend: str = "lava-sim",
                output="recon.png", npy=None, timeout: float | None = None,
                dataset: str | None = None, data_dir=None, progress: bool = True) -> RunResult:
    """Reconstruct the first `n` test images (the model's dataset unless `dataset`) and save
    originals above their reconstructions as a PNG."""
    from . import plots
    from .export import load
    from .hw.readout import to_signed
    from .loihi_runtime import run
    from .model_data import check_dataset, test_images
    out, npy = _outputs(output, npy)
    if dataset is not None or data_dir is not None:
        check_dataset(dataset or "mnist", data_dir)
    net = load(netfile)
    seed = net.seed if seed is None else seed
    x = test_images(net, n, dataset, data_dir)
    t0 = time.time()
    images, _ = run(net, backend, x_bytes=x, seed=seed, progress=progress, timeout=timeout)
    target = to_signed(x, torch.float64)
    mse = float(((images - target) ** 2).mean())
    plots.save_pairs(target.float(), images.float(), out)
    if npy:
        save_npy(images.numpy(), npy)
    return RunResult(images, backend, seed, time.time() - t0, out, npy, x, mse)
