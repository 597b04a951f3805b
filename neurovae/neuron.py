"""Training's CUBA step: lava-dl's integer arithmetic in float units, with its gradient.

The forward of `cuba_step` applies the deploy core's rule (`hw.neuron.decay`) to states in
hardware units, so training computes exactly the deployed integers; the backward is
lava-dl's linear recursion and surrogate spike gradient.
"""
from __future__ import annotations

import torch

from .hw.neuron import (BIAS_MAX, BIAS_MIN, DECAY_UNITY, STATE_SCALE, WEIGHT_SCALE,
                        NeuronParams, decay)

TAU_RHO_MULT, SCALE_RHO_MULT = 100, 0.1   # lava-dl's surrogate-gradient constants


def quantize_bias(b: torch.Tensor) -> torch.Tensor:
    """Differentiable bias on Loihi's grid: bias mantissa / 64, 13-bit signed (STE)."""
    q = (torch.round(b * WEIGHT_SCALE).clamp(BIAS_MIN, BIAS_MAX)) / WEIGHT_SCALE
    return b + (q - b).detach()


class _CubaStep(torch.autograd.Function):
    """lava-dl's integer CUBA update for one step, with its linear-recursion gradient."""

    @staticmethod
    def forward(ctx, a, u, v, bias, i_decay: int, v_decay: int):
        ctx.fu = 1.0 - i_decay / DECAY_UNITY
        ctx.fv = 1.0 - v_decay / DECAY_UNITY
        # integers held in float64 (exact here), in hardware units
        a_hw = torch.trunc(a.detach().double() * STATE_SCALE)
        u_new = decay(torch.round(u.detach().double() * STATE_SCALE), i_decay).add_(a_hw)
        b_hw = torch.round(bias.detach().double() * STATE_SCALE)
        v_new = decay(torch.round(v.detach().double() * STATE_SCALE), v_decay)
        v_new.add_(u_new).add_(b_hw)
        return (u_new.to(a.dtype) / STATE_SCALE), (v_new.to(a.dtype) / STATE_SCALE)

    @staticmethod
    def backward(ctx, gu, gv):
        g_u_total = gu + gv           # v_new depends on u_new with slope 1
        g_bias = gv.sum(0) if gv.dim() > 1 else gv
        return g_u_total, g_u_total * ctx.fu, gv * ctx.fv, g_bias, None, None


def cuba_step(a: torch.Tensor, u: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
              p: NeuronParams):
    """One differentiable CUBA step in float units; returns (spikes, u, v_after_reset).

    ``bias`` (per neuron, float units, on the 1/64 grid) is added to v as Loihi does.

    Forward is bit-identical to lava-dl's block dynamics; the reset is invisible to the
    gradient, as in lava-dl's backward pass.
    """
    from lava.lib.dl.slayer.spike.spike import Spike

    u_new, v_new = _CubaStep.apply(a, u, v, bias, p.i_decay, p.v_decay)
    th = p.threshold
    s = Spike.apply(v_new, th + 0.01 / STATE_SCALE, p.tau_grad * th * TAU_RHO_MULT,
                    p.scale_grad * SCALE_RHO_MULT, False, 0, 1)
    v_reset = v_new - (v_new * s).detach()
    return s, u_new, v_reset
