"""lava-dl's CUBA neuron (current, voltage, reset, spike) in one fused CPU pass per neuron.

lava-dl computes a block's neurons as three whole-tensor stages (current integrator,
voltage integrator with reset, spike function), each sweeping the strided time axis with
several temporaries, and saves current and voltage for the backward pass. Here one numba
loop per neuron runs all three over its contiguous time row with the state in registers,
and only the voltage is kept for backward. The forward is bit-identical to lava-dl's
(same integers, same float32 roundings); the backward is lava-dl's surrogate gradient and
linear-recursion rule in float32, equal to lava-dl's up to the last bit of exp (computed
here by a vectorizable polynomial, by torch's vector library there). Tensors off the CPU
run the same arithmetic as torch ops (`neurovae.torch_cuba`), never lava-dl's CUDA code.
`install()` routes eligible `cuba.Neuron` calls here; the rest keep lava-dl's code.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from . import numba_threads  # noqa: F401  (before any parallel kernel runs)
from . import torch_cuba
from lava.lib.dl.slayer.neuron import cuba
from lava.lib.dl.slayer.utils import quantize

from .li_dynamics import DECAY_BITS, first_integer_at_or_above

_ORIGINAL_FORWARD = cuba.Neuron.forward


@numba.njit(inline="always", cache=True)
def _step(z, u, v, scale, inv, keep_u, keep_v, reset, threshold):
    """One neuron, one step: (u, v after reset, voltage before reset, spike)."""
    u = math.trunc(u * keep_u) + math.trunc(np.float64(z) * scale)
    current = np.float32(u * inv)                      # lava-dl hands float32 between stages
    v = math.trunc(v * keep_v) + math.trunc(np.float64(current) * scale)
    volt = np.float32(v * inv)
    spike = np.float32(1.0) if volt >= threshold else np.float32(0.0)
    return u, (0.0 if v >= reset else v), volt, spike


@numba.njit(parallel=True, cache=True)
def cuba_forward(z, scale, keep_u, keep_v, reset, threshold, delay, spikes, voltage):
    """z, spikes, voltage: (M, T) float32; spikes[t + delay] = spike at t (delay 0 or 1,
    the block's one-step axon delay, spikes[0] = 0 then). States: exact integers in float64.

    A neuron's steps are one dependency chain, so four neurons advance side by side."""
    m, steps = z.shape
    inv = 1.0 / scale                                  # exact: scale is a power of two
    for q in numba.prange((m + 3) // 4):
        i = 4 * q
        if delay:
            for r in range(i, min(i + 4, m)):
                spikes[r, 0] = np.float32(0.0)
        if i + 4 <= m:
            u0 = u1 = u2 = u3 = v0 = v1 = v2 = v3 = 0.0
            for t in range(steps):
                u0, v0, a0, s0 = _step(z[i, t], u0, v0, scale, inv, keep_u, keep_v,
                                       reset, threshold)
                u1, v1, a1, s1 = _step(z[i + 1, t], u1, v1, scale, inv, keep_u, keep_v,
                                       reset, threshold)
                u2, v2, a2, s2 = _step(z[i + 2, t], u2, v2, scale, inv, keep_u, keep_v,
                                       reset, threshold)
                u3, v3, a3, s3 = _step(z[i + 3, t], u3, v3, scale, inv, keep_u, keep_v,
                                       reset, threshold)
                voltage[i, t] = a0
                voltage[i + 1, t] = a1
                voltage[i + 2, t] = a2
                voltage[i + 3, t] = a3
                if t + delay < steps:
                    spikes[i, t + delay] = s0
                    spikes[i + 1, t + delay] = s1
                    spikes[i + 2, t + delay] = s2
                    spikes[i + 3, t + delay] = s3
        else:
            for r in range(i, m):
                u = v = 0.0
                for t in range(steps):
                    u, v, a, s = _step(z[r, t], u, v, scale, inv, keep_u, keep_v,
                                       reset, threshold)
                    voltage[r, t] = a
                    if t + delay < steps:
                        spikes[r, t + delay] = s


@numba.njit(inline="always", cache=True)
def exp_nonpositive(x):
    """exp(x) for x <= 0 from float64 arithmetic alone, so a loop of it vectorizes: Taylor
    terms to degree 11 at x / 256, squared eight times. Relative error < 2e-11 (float32's
    rounding is 6e-8); below -104 float32's exp is 0 and so is this one's rounding."""
    y = max(x, -104.0) * (1.0 / 256.0)
    p = 1.0 + y * (1.0 + y * (1.0 / 2 + y * (1.0 / 6 + y * (1.0 / 24 + y * (
        1.0 / 120 + y * (1.0 / 720 + y * (1.0 / 5040 + y * (1.0 / 40320 + y * (
            1.0 / 362880 + y * (1.0 / 3628800 + y * (1.0 / 39916800)))))))))))
    for _ in range(8):
        p = p * p
    return p


@numba.njit(parallel=True, cache=True)
def cuba_backward(voltage, grad_spikes, threshold, tau, peak, keep_u, keep_v, delay, grad_in):
    """Surrogate exp(-|v - th| / tau) * peak times the spikes' gradient (one vectorizable
    pass per neuron), then the two integrators' reverse recursions in place."""
    m, steps = voltage.shape
    for i in numba.prange(m):
        for t in range(steps - delay):
            e = np.float32(exp_nonpositive(np.float64(-abs(voltage[i, t] - threshold) / tau)))
            grad_in[i, t] = (peak * e) * grad_spikes[i, t + delay]
        for t in range(steps - delay, steps):
            grad_in[i, t] = np.float32(0.0)
        g_v = np.float32(0.0)
        g_u = np.float32(0.0)
        for t in range(steps - 1, -1, -1):
            g_v = keep_v * g_v + grad_in[i, t]
            g_u = keep_u * g_u + g_v
            grad_in[i, t] = g_u


class CubaConstants:
    """A lava-dl CUBA neuron's constants in the kernels' form (forward and backward)."""

    def __init__(self, neuron):
        scale = 1 << DECAY_BITS
        self.d_u = quantize(neuron.current_decay).item()
        self.d_v = quantize(neuron.voltage_decay).item()
        self.threshold = neuron.threshold + neuron.threshold_eps
        tau = neuron.tau_rho * cuba.TAU_RHO_MULT
        f32 = np.float32
        scale_rho = torch.tensor(neuron.scale_rho * cuba.SCALE_RHO_MULT, dtype=torch.float32)
        # lava-dl's float32 constants: peak = scale_rho / 2 / tau, keep = 1 - decay / 4096
        self.peak = f32((scale_rho / 2 / torch.tensor(tau, dtype=torch.float32)).item())
        self.tau = f32(tau)
        self.grad_keep = [f32(1) - f32(d) / f32(scale) for d in (self.d_u, self.d_v)]
        self.fwd = (float(scale), (scale - self.d_u) / scale, (scale - self.d_v) / scale,
                    float(first_integer_at_or_above(self.threshold * scale)),
                    f32(self.threshold))

    def run(self, z: torch.Tensor, delay: int = 0):
        """(spikes, voltage) of the neurons on z (..., T), on z's device: the numba kernel
        on the CPU, the torch kernel elsewhere (or everywhere, under torch_cuba.everywhere)."""
        if torch_cuba.wanted(z):
            return torch_cuba.forward(z, self, delay)
        spikes = torch.empty(z.shape, dtype=z.dtype)
        voltage = torch.empty(z.shape, dtype=z.dtype)
        self.forward(z, spikes, voltage, delay)
        return spikes, voltage

    def grad(self, voltage: torch.Tensor, grad_spikes: torch.Tensor, delay: int = 0):
        """Gradient of the drive from the voltage `run` returned and the spikes' gradient."""
        if torch_cuba.wanted(voltage):
            return torch_cuba.backward(voltage, grad_spikes, self, delay)
        grad_in = torch.empty(voltage.shape, dtype=voltage.dtype)
        self.backward(voltage, grad_spikes, grad_in, delay)
        return grad_in

    def forward(self, z: torch.Tensor, spikes: torch.Tensor, voltage: torch.Tensor,
                delay: int = 0) -> None:
        """Run the neurons on z (..., T) into spikes and voltage (same shape, contiguous)."""
        rows = (-1, z.shape[-1])
        cuba_forward(z.contiguous().view(rows).numpy(), *self.fwd, delay,
                     spikes.view(rows).numpy(), voltage.view(rows).numpy())

    def backward(self, voltage: torch.Tensor, grad_spikes: torch.Tensor,
                 grad_in: torch.Tensor, delay: int = 0) -> None:
        """Gradient of the neuron input from the saved voltage and the spikes' gradient."""
        rows = (-1, voltage.shape[-1])
        cuba_backward(voltage.view(rows).numpy(), grad_spikes.contiguous().view(rows).numpy(),
                      self.fwd[-1], self.tau, self.peak, *self.grad_keep, delay,
                      grad_in.view(rows).numpy())


class _FusedCuba(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, consts: CubaConstants):
        spikes, voltage = consts.run(z.detach())
        ctx.save_for_backward(voltage)
        ctx.consts = consts
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        (voltage,) = ctx.saved_tensors
        return ctx.consts.grad(voltage, grad_spikes), None


def eligible(neuron, x: torch.Tensor) -> bool:
    """The configurations the fused pass reproduces exactly; everything else keeps lava-dl."""
    return (x.dtype == torch.float32 and neuron.shared_param
            and not neuron.persistent_state and not neuron.requires_grad
            and neuron.norm is None and neuron.drop is None and not neuron.graded_spike
            and not neuron.debug and neuron.s_scale == 1 << DECAY_BITS
            and not bool(neuron.current_state.any()) and not bool(neuron.voltage_state.any()))


def forward(neuron, input: torch.Tensor) -> torch.Tensor:
    """Drop-in for `cuba.Neuron.forward`: spikes of the whole (N, ..., T) series."""
    if not eligible(neuron, input):
        return _ORIGINAL_FORWARD(neuron, input)
    record_shape(neuron, input.shape[1:-1])
    return _FusedCuba.apply(input, CubaConstants(neuron))


def record_shape(neuron, shape) -> None:
    """What lava-dl's neuron does with its input's shape: record it on the first call
    (blocks and export read it), refuse a different one later."""
    if neuron.shape is None:
        neuron.shape = shape
        neuron.num_neurons = int(np.prod(shape))
    elif shape != neuron.shape:
        raise AssertionError(f"Input tensor shape {tuple(shape)} does not match with "
                             f"Neuron shape ({neuron.shape}).")


def install() -> None:
    """Route lava-dl's CUBA neurons through `forward` (idempotent)."""
    cuba.Neuron.forward = forward


def uninstall() -> None:
    """Restore lava-dl's own forward (tests compare the two)."""
    cuba.Neuron.forward = _ORIGINAL_FORWARD


def installed() -> bool:
    """Whether lava-dl's CUBA neurons run through this module (`spiking_block` follows)."""
    return cuba.Neuron.forward is forward
