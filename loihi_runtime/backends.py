"""Run a `.net` model on a backend: Lava's CPU simulator, Loihi 2, or a tensor simulator.

All backends take the same inputs (image bytes or a count to generate, a seed) and return
the same things: images in [-1, 1] computed from the integer readout voltage, and when
asked, every population's spikes (n_images, neurons, S) for verification. This module only
picks the backend: the Lava run is `lava_backend` (guarded by `supervision`), the tensor
simulators are `neurovae.sim`.
"""
from __future__ import annotations

import torch

from neurovae.errors import NeurovaeError

# Importing lava_backend applies its Lava import fix (see import_lava_runtime), which every
# later import of Lava in this package relies on; Lava itself and neurovae.sim are imported
# where they are used, so that the CLI can read BACKENDS for its choices without that cost.
from .lava_backend import LavaInterrupted, LavaRunError, LavaTimeout, loihi2_available, run_lava

BACKENDS = ("lava-sim", "loihi2", "emulator", "reference")
# `reference` was called `torch` before; the old name still works.
BACKEND_ALIASES = {"torch": "reference"}
BACKEND_CHOICES = BACKENDS + tuple(BACKEND_ALIASES)     # what a --backend option accepts
TENSOR_BACKENDS = ("emulator", "reference")             # run batches of images at once

__all__ = ["BACKENDS", "BACKEND_ALIASES", "BACKEND_CHOICES", "TENSOR_BACKENDS",
           "BackendUnavailable", "LavaInterrupted", "LavaRunError", "LavaTimeout",
           "canonical", "run", "run_tensor"]


class BackendUnavailable(NeurovaeError):
    """The chosen backend cannot run on this machine."""


def canonical(backend: str) -> str:
    """The backend's name in BACKENDS (an alias resolved); unknown names raise."""
    name = BACKEND_ALIASES.get(backend, backend)
    if name not in BACKENDS:
        aliases = ", ".join(f"{a} = {b}" for a, b in BACKEND_ALIASES.items())
        raise NeurovaeError(f"unknown backend '{backend}'; choose one of "
                            f"{', '.join(BACKENDS)} ({aliases})")
    return name


def run_tensor(net, x_bytes, n, seed, record=False, first_image=0, backend="emulator"):
    """The tensor backends: `reference` steps the graph like Lava does; `emulator` computes
    one layer over all steps at a time. Both are spike-exact with Lava."""
    if canonical(backend) == "emulator":
        from neurovae.sim.emulator import Emulator as Simulator
    else:
        from neurovae.sim.reference import ReferenceSimulator as Simulator
    images, rec = Simulator(net).run(x_bytes, n, seed, first_image=first_image, record=record)
    return images, {k: v.numpy() for k, v in rec.items() if k != "readout_v"}


def run(net, backend: str, x_bytes=None, n: int | None = None, seed: int = 0,
        record: bool = False, progress: bool = False, timeout: float | None = None,
        first_image: int = 0, on_image=None):
    """Reconstruct `x_bytes` (uint8 N,C,H,W) or generate `n` images on `backend` (a name
    of BACKENDS or an alias of BACKEND_ALIASES) -> (images, records).

    Image i of the run uses the random draws of image `first_image + i`, so ten runs of 100
    from first_image 0, 100, ... give the images of one run of 1,000. `timeout` (seconds)
    and `on_image` apply to the Lava backends.
    """
    backend = canonical(backend)
    if x_bytes is not None:
        x_bytes = torch.as_tensor(x_bytes)
        if tuple(x_bytes.shape[1:]) != tuple(net.image_shape):
            raise NeurovaeError(f"images of shape {tuple(x_bytes.shape[1:])} do not fit this "
                                f"model's input {tuple(net.image_shape)}")
    lava = dict(progress=progress, timeout=timeout, first_image=first_image, on_image=on_image)
    if backend in TENSOR_BACKENDS:
        return run_tensor(net, x_bytes, n, seed, record, first_image, backend)
    if backend == "loihi2" and not loihi2_available():
        raise BackendUnavailable(
            "the loihi2 backend needs Intel's Loihi extension for Lava (lava-loihi), which "
            "is not installed here; use --backend lava-sim (Lava's CPU simulator)")
    return run_lava(net, x_bytes, n, seed, record, hardware=backend == "loihi2", **lava)
