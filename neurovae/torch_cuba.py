"""lava-dl's CUBA neuron and its surrogate gradient as plain torch ops stepping over time.

The kernel for tensors off the CPU: no nvcc and no lava-dl CUDA extension. It runs the
numba kernel's integer arithmetic (`cuba_kernel.cuba_forward`: states held exactly in
float64, float32 between the stages as lava-dl hands them), so the spikes are the same on
every device; the backward is lava-dl's rule in float32 (its exp is torch's, as lava-dl's).
"""
from __future__ import annotations

import contextlib

import torch

_EVERYWHERE = False


def wanted(t: torch.Tensor) -> bool:
    """Whether `t` runs on these kernels: every tensor off the CPU, CPU ones when forced."""
    return _EVERYWHERE or t.device.type != "cpu"


@contextlib.contextmanager
def everywhere():
    """Run CPU tensors on these kernels too: the GPU code path, testable on a CPU."""
    global _EVERYWHERE
    old, _EVERYWHERE = _EVERYWHERE, True
    try:
        yield
    finally:
        _EVERYWHERE = old


def _time_major(x: torch.Tensor, dtype=None) -> torch.Tensor:
    """(..., T) -> contiguous (T, M)."""
    rows = x.reshape(-1, x.shape[-1])
    return rows.t().to(dtype or x.dtype, memory_format=torch.contiguous_format)


def _back(x_tm: torch.Tensor, shape) -> torch.Tensor:
    """(T, M) -> contiguous (..., T) of `shape`."""
    return x_tm.t().contiguous().view(shape)


def forward(z: torch.Tensor, c, delay: int = 0):
    """Spikes and voltage (both shaped like z, float32) of CUBA neurons with constants `c`
    (`cuba_kernel.CubaConstants`) on the drive z (..., T); spikes[t + delay] = spike at t."""
    scale, keep_u, keep_v, reset, threshold = c.fwd
    inv = 1.0 / scale                                   # exact: scale is a power of two
    threshold = float(threshold)                        # float32's value, compared in float32
    steps = z.shape[-1]
    a = _time_major(z.detach(), torch.float32)
    m = a.shape[1]
    volt = torch.empty_like(a)
    spikes = torch.zeros_like(a)
    u = torch.zeros(m, dtype=torch.float64, device=z.device)
    v = torch.zeros_like(u)
    drive = torch.empty_like(u)
    for t in range(steps):
        torch.mul(a[t], scale, out=drive).trunc_()       # trunc(float64(z) * scale)
        u.mul_(keep_u).trunc_().add_(drive)
        current = (u * inv).to(torch.float32)           # lava-dl hands float32 between stages
        torch.mul(current, scale, out=drive)            # float32 -> float64 exactly, then scaled
        v.mul_(keep_v).trunc_().add_(drive.trunc_())
        torch.mul(v, inv, out=drive)
        volt[t] = drive                                 # rounded to float32
        if t + delay < steps:
            torch.ge(volt[t], threshold, out=spikes[t + delay])
        v.masked_fill_(v >= reset, 0.0)
    return _back(spikes, z.shape), _back(volt, z.shape)


def backward(voltage: torch.Tensor, grad_spikes: torch.Tensor, c, delay: int = 0):
    """Gradient of the drive from the saved voltage and the spikes' gradient: lava-dl's
    surrogate peak * exp(-|v - th| / tau), then the two integrators' reverse recursions."""
    threshold = float(c.fwd[-1])
    tau, peak = float(c.tau), float(c.peak)
    keep_u, keep_v = (float(k) for k in c.grad_keep)
    steps = voltage.shape[-1]
    v = _time_major(voltage)
    g = _time_major(grad_spikes.to(voltage.dtype))
    grad = torch.zeros_like(v)
    if steps > delay:
        e = torch.exp(-torch.abs(v[:steps - delay] - threshold) / tau)
        torch.mul(torch.mul(e, peak, out=e), g[delay:], out=grad[:steps - delay])
    g_v = torch.zeros_like(v[0])
    g_u = torch.zeros_like(v[0])
    for t in range(steps - 1, -1, -1):
        g_v.mul_(keep_v).add_(grad[t])
        g_u.mul_(keep_u).add_(g_v)
        grad[t] = g_u
    return _back(grad, voltage.shape)


def pack(x: torch.Tensor) -> torch.Tensor:
    """The input as bytes when it is spikes (0/1), else as it is (the conv's saved input)."""
    if x.dtype != torch.float32 or not bool(((x == 0) | (x == 1)).all()):
        return x
    return x.to(torch.uint8)


WEIGHT_GRID = 32   # lava-dl's 8-bit weights are multiples of 2/64


def exact_drive(z: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The synaptic drive z = conv(x, w) made exact: on spikes and 8-bit weights its true
    value is a multiple of 1/32, which rounding restores where the conv's algorithm (cuDNN's
    FFT or Winograd, say) rounded its sums. Elsewhere z as it is; on exact sums a no-op."""
    on_grid = torch.logical_and(((x == 0) | (x == 1)).all(),
                                (torch.round(w * WEIGHT_GRID) == w * WEIGHT_GRID).all())
    return torch.where(on_grid, torch.round(z * WEIGHT_GRID) / WEIGHT_GRID, z)
