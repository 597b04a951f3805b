"""A fused CPU kernel for the emulator's CUBA LIF over all steps (current = this step's input).

One pass per neuron keeps its voltage in a register across steps, where tensor ops would
read and write every neuron five times a step. Same arithmetic as `hw.neuron.lif_step`:
integers held exactly in float64, decay truncated toward zero; any |u| or |v| reaching
Loihi's 24-bit limit is flagged.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from .. import numba_threads  # noqa: F401  (before any parallel kernel runs)


@numba.njit(parallel=True, cache=True)
def _run(a, scale, bias, v, keep, threshold, limit, spikes, over):
    """a, spikes: (S, N, K); v: (N, K); bias: (K,); over[i] = 1 if image i left the range."""
    steps, n, k = a.shape
    for t in range(steps):
        for i in numba.prange(n):
            for j in range(k):
                u = a[t, i, j] * scale
                x = math.trunc(v[i, j] * keep) + u + bias[j]
                if abs(u) >= limit or abs(x) >= limit:
                    over[i] = 1
                if x > threshold:
                    spikes[t, i, j] = 1
                    x = 0.0
                else:
                    spikes[t, i, j] = 0
                v[i, j] = x


def memory_order(x: torch.Tensor) -> list:
    """Dims of a dense tensor from outermost to innermost in memory."""
    return sorted(range(x.dim()), key=lambda d: -x.stride(d))


def lif_run(a: torch.Tensor, bias: torch.Tensor, v0: torch.Tensor, scale: int, keep: float,
            threshold: float, limit: float):
    """LIF over an input series a (S, N, ...) in any dense layout, N outermost.

    bias: per neuron (shape a.shape[2:]), added every step; v0: starting voltage (N, ...).
    Returns (spikes uint8 like a, final v like a[0], whether any |u| or |v| reached limit).
    """
    order = memory_order(a[0])
    if order[0] != 0:                      # images must be outermost for the bias index
        a = a.contiguous()
        order = list(range(a.dim() - 1))
    perm = [0] + [d + 1 for d in order]
    steps, n = a.shape[:2]
    a_mem = a.permute(perm).reshape(steps, n, -1)
    b_mem = bias.expand(a.shape[2:]).permute([d - 1 for d in order[1:]]).reshape(-1)
    v_mem = v0.expand(a.shape[1:]).permute(order).contiguous().reshape(n, -1).double()
    spikes = torch.empty(a_mem.shape, dtype=torch.uint8)
    over = torch.zeros(n, dtype=torch.uint8)
    _run(a_mem.numpy(), float(scale), np.ascontiguousarray(b_mem.double().numpy()),
         v_mem.numpy(), float(keep), float(threshold), float(limit), spikes.numpy(),
         over.numpy())
    inverse = [perm.index(i) for i in range(len(perm))]
    mem_shape = [a.shape[i] for i in perm]
    spikes = spikes.view(mem_shape).permute(inverse)
    v = v_mem.view(mem_shape[1:]).permute([i - 1 for i in inverse[1:]])
    return spikes, v, bool(over.any())
