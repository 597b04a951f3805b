"""Counter-based integer PRNG shared by training, deploy mode and the Lava processes.

A draw is a pure function of (seed, image, step, neuron): no state to carry, so the
same spikes come out of PyTorch, the batched emulator and a Lava process stepping one
image at a time. The hash is murmur3's 32-bit finalizer, computed in int64 with masking
(torch 2.3 lacks unsigned 32-bit arithmetic); multiplications are split into 16-bit
halves so no intermediate exceeds 2**49, which keeps numpy and torch bit-identical.
"""
from __future__ import annotations

import numpy as np
import torch

ALGORITHM = "murmur3-fmix32-counter-v1"
MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
_C1 = 0x85EBCA6B
_C2 = 0xC2B2AE35


def _mul32(x, c: int):
    """(x * c) mod 2**32 for 0 <= x < 2**32 without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & MASK32


def _fmix32(x):
    x = x ^ (x >> 16)
    x = _mul32(x, _C1)
    x = x ^ (x >> 13)
    x = _mul32(x, _C2)
    return x ^ (x >> 16)


def _mix(h, x):
    return _fmix32((h ^ ((x + _GOLDEN) & MASK32)) & MASK32)


def _draw(seed, image, step, neuron):
    h = _fmix32((seed + _GOLDEN) & MASK32)
    h = _mix(h, image)
    h = _mix(h, step)
    return _mix(h, neuron)


def draw_numpy(seed: int, image, step, neuron) -> np.ndarray:
    """Uniform 32-bit integers (as int64) for broadcastable image/step/neuron indices."""
    args = [np.asarray(a, dtype=np.int64) & MASK32 for a in (image, step, neuron)]
    return _draw(np.int64(int(seed) & MASK32), *args)


def draw_torch(seed: int, image, step, neuron) -> torch.Tensor:
    """Same as `draw_numpy` on int64 torch tensors (any device)."""
    args = [torch.as_tensor(a, dtype=torch.int64) & MASK32 for a in (image, step, neuron)]
    return _draw(int(seed) & MASK32, *args)


def randint_numpy(seed: int, image, step, neuron, high: int) -> np.ndarray:
    """Integers in [0, high) from the counter PRNG (modulo; bias < high / 2**32)."""
    return draw_numpy(seed, image, step, neuron) % int(high)


def randint_torch(seed: int, image, step, neuron, high: int) -> torch.Tensor:
    """Torch twin of `randint_numpy`."""
    return draw_torch(seed, image, step, neuron) % int(high)


PRIOR_SEED_SALT = 0x5BD1E995   # prior samplers use seed ^ salt, so they differ from the posterior's
MIX_SEED_SALT = 0x27D4EB2F     # FSVAE's scheduled-sampling draws (training only)


def _irwin_hall(draw, seed: int, image, idx, step: int):
    total = 0
    for j in range(4):
        total = total + (draw(seed, image, step * 4 + j, idx) >> 16)
    return total - 2 * 65536


def gaussian_int_numpy(seed: int, image, idx, step: int = 0) -> np.ndarray:
    """Integers ~ N(0, 2**32 / 3): Irwin-Hall sum of four 16-bit draws, centered.

    Integer-exact on both sides; eps = value * sqrt(3) / 2**16 is close to N(0, 1).
    """
    return _irwin_hall(draw_numpy, seed, image, idx, step)


def gaussian_int_torch(seed: int, image, idx, step: int = 0) -> torch.Tensor:
    """Torch twin of `gaussian_int_numpy`."""
    return _irwin_hall(draw_torch, seed, image, idx, step)
