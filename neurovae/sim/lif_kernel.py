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
def _run(a, steps, n_in, vary, scale, bias, v, keep, threshold, limit, spikes, over):
    """a: (n_in, N, K), the input of the first n_in steps (zero after), or (1, N, K) with
    vary = 0 for the same input at every step (the input drive); spikes: (steps, N, K);
    v: (N, K); bias: (K,); over[i] = 1 if image i left the range.

    Images are independent, so the parallel loop is the outermost: one parallel region per
    call rather than one per step (each a barrier the threads wait at)."""
    n, k = v.shape
    for i in numba.prange(n):
        for t in range(steps):
            ta = t * vary
            live = t < n_in
            for j in range(k):
                u = a[ta, i, j] * scale if live else 0.0
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
            threshold: float, limit: float, dtype: torch.dtype = torch.uint8, buffer=None,
            steps: int | None = None):
    """LIF over an input series a (S, N, ...) in any dense layout, N outermost; an input
    expanded over the steps (stride 0, the input drive) is read once per step, not copied.

    bias: per neuron (shape a.shape[2:]), added every step; v0: starting voltage (N, ...).
    Returns (spikes of `dtype` (0 or 1) in a's layout, final v like a[0], whether any |u| or
    |v| reached limit). Spikes can be written in the dtype their next synapse reads, which
    spares a conversion pass over the whole train. buffer(numel, dtype), when given, returns
    a flat tensor of at least numel elements for the spikes (the caller's, reused from call
    to call: writing into memory already mapped is much faster here than into a fresh
    allocation, whose first touch faults every page in). steps: how many steps to run
    (default len(a)); those after a's last have no input (the neurons still leak, take
    their bias and are range-checked).
    """
    n_in, n = a.shape[:2]
    steps = n_in if steps is None else steps
    vary = 0 if n_in > 1 and a.stride(0) == 0 else 1   # an expanded, constant input
    if not vary:
        n_in = steps
    src = a if vary else a[:1]
    order = memory_order(src[0])
    if order[0] != 0:                      # images must be outermost for the bias index
        src = src.contiguous()
        order = list(range(src.dim() - 1))
    perm = [0] + [d + 1 for d in order]
    a_mem = src.permute(perm).reshape(len(src), n, -1)
    b_mem = bias.expand(a.shape[2:]).permute([d - 1 for d in order[1:]]).reshape(-1)
    # a copy: the kernel updates v in place, and the caller's v0 must stay as it was
    v_mem = v0.expand(a.shape[1:]).permute(order).double().clone(
        memory_format=torch.contiguous_format).reshape(n, -1)
    numel = steps * a_mem.shape[1] * a_mem.shape[2]
    flat = torch.empty(numel, dtype=dtype) if buffer is None else buffer(numel, dtype)[:numel]
    spikes = flat.view(steps, *a_mem.shape[1:])
    over = torch.zeros(n, dtype=torch.uint8)
    _run(a_mem.numpy(), steps, n_in, vary, float(scale), np.ascontiguousarray(b_mem.double().numpy()),
         v_mem.numpy(), float(keep), float(threshold), float(limit), spikes.numpy(),
         over.numpy())
    inverse = [perm.index(i) for i in range(len(perm))]
    mem_shape = [steps] + [a.shape[i] for i in perm[1:]]
    spikes = spikes.view(mem_shape).permute(inverse)
    v = v_mem.view(mem_shape[1:]).permute([i - 1 for i in inverse[1:]])
    return spikes, v, bool(over.any())
