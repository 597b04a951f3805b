"""Run a `.net` model on a backend: Lava's CPU simulator, Loihi 2, or the torch emulator.

All backends take the same inputs (image bytes or a count to generate, a seed) and return
the same things: images in [-1, 1] computed from the integer readout voltage, and when
asked, every population's spikes (n_images, neurons, S) for verification.
"""
from __future__ import annotations

import numpy as np
import torch

from neurovae.deploy import DeployNet
from neurovae.emulator import Emulator, input_drive, readout_image
from neurovae.errors import NeurovaeError

BACKENDS = ("lava-sim", "loihi2", "torch")


class BackendUnavailable(NeurovaeError):
    """The chosen backend cannot run on this machine."""


class LavaRunError(NeurovaeError):
    """A Lava process failed during a run."""


def loihi2_available() -> bool:
    try:
        from lava.utils import loihi
        return bool(loihi.is_installed())
    except Exception:
        return False


def drive_series(net: DeployNet, x_bytes: torch.Tensor) -> np.ndarray:
    """The input RingBuffer's data: each image's integer drive held for its S steps."""
    d = input_drive(net.encoder[0], x_bytes).numpy()          # (N, n_in)
    return np.repeat(d.T[:, :, None], net.n_steps, axis=2).reshape(d.shape[1], -1)


def run_torch(net, x_bytes, n, seed, record=False):
    images, rec = Emulator(net).run(x_bytes, n, seed, record=record)
    return images, {k: v.numpy() for k, v in rec.items() if k != "readout_v"}


def run_lava(net: DeployNet, x_bytes, n, seed, record=False, hardware=False, progress=False):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
    from lava.proc.lif.process import LIFReset
    from tqdm import tqdm

    from .graph import LavaGraph
    from .processes.gated_lif import PyGatedLifResetModel

    n = n if x_bytes is None else len(x_bytes)
    drive = None if x_bytes is None else drive_series(net, x_bytes)
    graph = LavaGraph(net, n, seed, drive, record=record)
    if hardware:
        cfg = Loihi2HwCfg(exception_proc_model_map={LIFReset: PyGatedLifResetModel})
    else:
        cfg = Loihi2SimCfg(select_tag="fixed_pt",
                           exception_proc_model_map={LIFReset: PyGatedLifResetModel})
    root = graph.readout
    started = False
    try:
        for _ in tqdm(range(n), desc=f"lava {'loihi2' if hardware else 'sim'}", unit="image",
                      disable=not progress, dynamic_ncols=True):
            root.run(condition=RunSteps(num_steps=net.n_steps), run_cfg=cfg)
            started = True
        frames = np.asarray(root.frames.get(), np.int64)
        records = graph.read_records() if record else {}
    except RuntimeError as exc:
        raise LavaRunError(f"the Lava run failed: {str(exc).splitlines()[0][:300]}") from None
    finally:
        if started:
            root.stop()
    images = readout_image(torch.as_tensor(frames), net.readout.out_shape)
    return images, records


def run(net: DeployNet, backend: str, x_bytes=None, n: int | None = None, seed: int = 0,
        record: bool = False, progress: bool = False):
    """Reconstruct `x_bytes` (uint8 N,C,H,W) or generate `n` images on `backend`."""
    if x_bytes is not None:
        x_bytes = torch.as_tensor(x_bytes)
        if tuple(x_bytes.shape[1:]) != tuple(net.image_shape):
            raise NeurovaeError(f"images of shape {tuple(x_bytes.shape[1:])} do not fit this "
                                f"model's input {tuple(net.image_shape)}")
    if backend == "torch":
        return run_torch(net, x_bytes, n, seed, record)
    if backend == "lava-sim":
        return run_lava(net, x_bytes, n, seed, record, progress=progress)
    if backend == "loihi2":
        if not loihi2_available():
            raise BackendUnavailable(
                "the loihi2 backend needs Intel's Loihi extension for Lava (lava-loihi), which "
                "is not installed here; use --backend lava-sim (Lava's CPU simulator)")
        return run_lava(net, x_bytes, n, seed, record, hardware=True, progress=progress)
    raise NeurovaeError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
