"""A faster path for lava-dl's leaky-integrator dynamics, bit-identical to lava-dl's.

lava-dl's CPU fallback steps through time on the last (strided) axis in int64 with several
temporaries per step; on a CPU that loop is most of a training step. This version runs
the same integer arithmetic time-major and contiguous, in float64 (exact for these
integers: products stay far below 2**53), with in-place ops. It is plain torch, so CUDA
tensors run it too instead of lava-dl's nvcc-compiled extension. `install()` routes
lava-dl's calls here; debug mode and per-channel decays keep lava-dl's own code.
"""
from __future__ import annotations

import torch

from lava.lib.dl.slayer.neuron.dynamics import leaky_integrator as _li

_ORIGINAL = _li.dynamics
DECAY_BITS = 12


def first_integer_at_or_above(threshold: float) -> int:
    """Smallest integer m with float32(m) >= float32(threshold).

    lava-dl compares its int64 state with a Python float threshold, which torch does in
    float32; this integer makes the same comparison exact on float64 states.
    """
    t32 = torch.tensor(threshold, dtype=torch.float32)
    m = int(threshold) - 2
    while torch.tensor(m, dtype=torch.float32) < t32:
        m += 1
    return m


class _FastLI(torch.autograd.Function):
    """lava-dl's `_LIDynamics` with a time-major forward and backward."""

    @staticmethod
    def forward(ctx, input, decay, state, threshold, w_scale):
        steps = input.shape[-1]
        x = torch.movedim(input.detach(), -1, 0).to(torch.float64,
                                                   memory_format=torch.contiguous_format)
        x.mul_(w_scale).trunc_()                       # (w_scale * input).to(int64)
        keep = ((1 << DECAY_BITS) - int(decay.detach().reshape(-1)[0])) / (1 << DECAY_BITS)
        y = torch.trunc(state.detach().to(torch.float64) * w_scale).expand(x.shape[1:]).clone()
        reset = first_integer_at_or_above(threshold * w_scale) if threshold > 0 else None
        for t in range(steps):
            y.mul_(keep).trunc_().add_(x[t])            # right_shift_to_zero(y * d, 12) + x
            x[t] = y                                    # the output overwrites its input
            if reset is not None:
                y.masked_fill_(y >= reset, 0.0)
        output = torch.movedim(x.div_(w_scale).to(input.dtype), 0, -1).contiguous()
        ctx.save_for_backward(output, decay)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        output, decay = ctx.saved_tensors
        keep = 1 - decay / (1 << DECAY_BITS)
        g_out = torch.movedim(grad_output, -1, 0).contiguous()
        g_in = torch.empty_like(g_out)
        g_in[-1] = g_out[-1]
        for t in range(g_out.shape[0] - 2, -1, -1):     # keep * g[t+1] + g_out[t], in place
            torch.mul(g_in[t + 1], keep, out=g_in[t]).add_(g_out[t])
        grad_input = torch.movedim(g_in, 0, -1).contiguous()
        grad_decay = torch.sum((grad_input[..., 1:] * output[..., :-1]).flatten(), dim=0,
                               keepdim=True)
        return grad_input, grad_decay, None, None, None


def dynamics(input, decay, state, w_scale, threshold=None, debug=False):
    """Drop-in for `leaky_integrator.dynamics` (same arguments, same results)."""
    if debug or decay.numel() != 1 or input.dtype != torch.float32:
        return _ORIGINAL(input, decay, state, w_scale, threshold, debug)
    if torch.numel(state) == 1:
        state = state * torch.ones(input.shape[:-1], device=input.device)
    return _FastLI.apply(input, decay, state, -1 if threshold is None else threshold, w_scale)


def install() -> None:
    """Route lava-dl's CUBA neurons through `dynamics` (idempotent)."""
    _li.dynamics = dynamics


def uninstall() -> None:
    """Restore lava-dl's own implementation (tests compare the two)."""
    _li.dynamics = _ORIGINAL
