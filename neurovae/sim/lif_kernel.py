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
def _run(a, steps, n_in, vary, scale, bias, v0, v, keep, threshold, limit, spikes, over,
         fired):
    """a: (n_in, N, K), the input of the first n_in steps (zero after), or (1, N, K) with
    vary = 0 for the same input at every step (the input drive); spikes: (steps, N, K);
    v0: (N, K), or (1, K) for one starting voltage of every image; v: (N, K), the final
    voltage; bias: (K,); over[i] = 1 if image i left the range; fired: (N, steps), image
    i's spike count at step t (which steps carry spikes, and how many: the next synapse's
    work, without reading the train again).

    Images are independent, so the parallel loop is the outermost: one parallel region per
    call rather than one per step (each a barrier the threads wait at)."""
    n, k = v.shape
    row = 0 if v0.shape[0] == 1 else 1      # image i starts from v0[i * row]
    for i in numba.prange(n):
        i0 = i * row
        for j in range(k):
            v[i, j] = v0[i0, j]
        for t in range(steps):
            ta = t * vary
            live = t < n_in
            c = 0
            for j in range(k):
                u = a[ta, i, j] * scale if live else 0.0
                x = math.trunc(v[i, j] * keep) + u + bias[j]
                if abs(u) >= limit or abs(x) >= limit:
                    over[i] = 1
                if x > threshold:
                    spikes[t, i, j] = 1
                    x = 0.0
                    c += 1
                else:
                    spikes[t, i, j] = 0
                v[i, j] = x
            fired[i, t] = c


def memory_order(x: torch.Tensor) -> list:
    """Dims of a dense tensor from outermost to innermost in memory."""
    return sorted(range(x.dim()), key=lambda d: -x.stride(d))


def lif_run(a: torch.Tensor, bias: torch.Tensor, v0: torch.Tensor, scale: int, keep: float,
            threshold: float, limit: float, dtype: torch.dtype = torch.uint8, buffer=None,
            steps: int | None = None, fired: torch.Tensor | None = None):
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
    their bias and are range-checked). fired, when given: an int64 tensor (steps,) that
    receives the number of spikes at each step, over all images.
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
    # v0 as the kernel reads it: one row where every image starts alike (no copy per
    # image); the kernel writes the voltages to v_mem, leaving the caller's v0 as it was
    v_src = v0.expand(a.shape[1:])
    if n > 1 and v_src.stride(0) == 0:
        v_src = v_src[:1]
    v_in = v_src.permute(order).double().contiguous().reshape(len(v_src), -1)
    v_mem = torch.empty(n, a_mem.shape[2], dtype=torch.float64)
    numel = steps * a_mem.shape[1] * a_mem.shape[2]
    flat = torch.empty(numel, dtype=dtype) if buffer is None else buffer(numel, dtype)[:numel]
    spikes = flat.view(steps, *a_mem.shape[1:])
    over = torch.zeros(n, dtype=torch.uint8)
    per_image = np.empty((n, steps), np.int64)
    _run(a_mem.numpy(), steps, n_in, vary, float(scale), np.ascontiguousarray(b_mem.double().numpy()),
         v_in.numpy(), v_mem.numpy(), float(keep), float(threshold), float(limit), spikes.numpy(),
         over.numpy(), per_image)
    if fired is not None:
        fired.copy_(torch.from_numpy(per_image.sum(0)))
    inverse = [perm.index(i) for i in range(len(perm))]
    mem_shape = [steps] + [a.shape[i] for i in perm[1:]]
    spikes = spikes.view(mem_shape).permute(inverse)
    v = v_mem.view(mem_shape[1:]).permute([i - 1 for i in inverse[1:]])
    return spikes, v, bool(over.any())
