"""CUBA LIF neuron constants, quantization rules and step functions shared by every side.

Units: lava-dl keeps states in "float units" = hardware units / 4096 (``STATE_SCALE``);
weights are even integers in [-256, 254] = float weight * 64 (``WEIGHT_SCALE``);
threshold mantissa = float threshold * 64; decays are 12-bit (x 4096).
The integer step below is Lava's bit-accurate LIF (``PyLifModelBitAcc``) with netx's
parameter mapping (du = iDecay - 1, bias exponent 6); the float step is lava-dl's CUBA
arithmetic one step at a time, with lava-dl's surrogate gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

WEIGHT_SCALE = 64          # lava-dl w_scale: float weight 1.0 == integer 64
STATE_SCALE = 64 * 64      # lava-dl s_scale: float state 1.0 == 4096 hardware units
DECAY_UNITY = 4096         # 12-bit decays
ACT_SHIFT = 6              # Loihi left-shifts synaptic input by 6 bits
BIAS_EXP = 6               # netx maps the layer bias to bias_mant with bias_exp = 6
UV_LIMIT = 2 ** 23         # u and v are 24-bit signed on Loihi
WEIGHT_MIN, WEIGHT_MAX = -256, 254
VTH_MAX = 2 ** 17 - 1
BIAS_MIN, BIAS_MAX = -4096, 4095
TAU_RHO_MULT, SCALE_RHO_MULT = 100, 0.1   # lava-dl's surrogate-gradient constants


@dataclass(frozen=True)
class NeuronParams:
    """CUBA LIF parameters in hardware integers (what the .net file stores)."""

    i_decay: int = 4096      # current decay; 4096 = current is this step's input only
    v_decay: int = 3072      # voltage decay; 3072 keeps 0.25 of v per step (FSVAE's tau)
    vth_mant: int = 80       # threshold mantissa; float threshold = vth_mant / 64
    tau_grad: float = 0.01   # surrogate width (x threshold), lava-dl convention
    scale_grad: float = 12.0 # surrogate scale, lava-dl convention

    @property
    def threshold(self) -> float:
        return self.vth_mant / WEIGHT_SCALE

    def slayer_params(self) -> dict:
        """Keyword arguments for lava-dl's ``cuba.Neuron`` giving exactly these integers."""
        return dict(threshold=self.threshold, current_decay=self.i_decay / DECAY_UNITY,
                    voltage_decay=self.v_decay / DECAY_UNITY, tau_grad=self.tau_grad,
                    scale_grad=self.scale_grad)


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """lava-dl's 8-bit weight rule (step 2/64, clamp [-256, 254]/64) as integer tensor."""
    return (torch.round(w.detach().double() * (WEIGHT_SCALE / 2)) * 2).clamp(
        WEIGHT_MIN, WEIGHT_MAX).to(torch.int64)


def quantize_bias(b: torch.Tensor) -> torch.Tensor:
    """Differentiable bias on Loihi's grid: bias mantissa / 64, 13-bit signed (STE)."""
    q = (torch.round(b * WEIGHT_SCALE).clamp(BIAS_MIN, BIAS_MAX)) / WEIGHT_SCALE
    return b + (q - b).detach()


def round_half_even_div(x: torch.Tensor, shift: int) -> torch.Tensor:
    """x / 2**shift rounded half to even, on int64 (matches torch.round on exact floats)."""
    q = x >> shift
    r = x - (q << shift)
    half = 1 << (shift - 1)
    up = (r > half) | ((r == half) & (q % 2 == 1))
    return q + up.to(torch.int64)


def _decay(x, decay: int):
    """sign(x) * ((|x| * (4096 - decay)) >> 12): Loihi's decay, rounding toward zero."""
    if isinstance(x, torch.Tensor):
        return torch.sign(x) * ((torch.abs(x) * (DECAY_UNITY - decay)) >> 12)
    return np.sign(x) * ((np.abs(x) * (DECAY_UNITY - decay)) >> 12)


class StateOverflow(ArithmeticError):
    """A neuron state left the 24-bit range, where Loihi wraps or saturates."""


def _max_abs(x) -> int:
    if isinstance(x, torch.Tensor):
        return int(x.abs().max()) if x.numel() else 0
    return int(np.abs(x).max()) if np.size(x) else 0


def lif_step_int(u, v, a, p: NeuronParams, bias=0, check: bool = True):
    """One bit-accurate CUBA LIF step on int64 tensors or arrays; returns (u, v, spikes).

    ``a`` is the integer synaptic input (weights x spikes, or the graded input drive);
    ``bias`` the bias mantissa. Spiking neurons reset v to 0. With ``check`` a state
    outside Loihi's 24-bit range raises StateOverflow instead of emulating a wrap.
    """
    u = _decay(u, p.i_decay) + a * (1 << ACT_SHIFT)
    v = _decay(v, p.v_decay) + u + bias * (1 << BIAS_EXP)
    if check and max(_max_abs(u), _max_abs(v)) >= UV_LIMIT - 1:
        raise StateOverflow(
            f"neuron state {max(_max_abs(u), _max_abs(v))} exceeds Loihi's 24-bit range")
    s = v > (p.vth_mant << ACT_SHIFT)
    v = v * ~s
    return u, v, s


class _CubaStep(torch.autograd.Function):
    """lava-dl's integer CUBA update for one step, with its linear-recursion gradient."""

    @staticmethod
    def forward(ctx, a, u, v, bias, i_decay: int, v_decay: int):
        ctx.fu = 1.0 - i_decay / DECAY_UNITY
        ctx.fv = 1.0 - v_decay / DECAY_UNITY
        # integers held in float64 (exact here): trunc(x * f) == sign(x) * (|x| * d >> 12)
        a_hw = torch.trunc(a.detach().double() * STATE_SCALE)
        u_new = torch.trunc(torch.round(u.detach().double() * STATE_SCALE) * ctx.fu).add_(a_hw)
        b_hw = torch.round(bias.detach().double() * STATE_SCALE)
        v_new = torch.trunc(torch.round(v.detach().double() * STATE_SCALE) * ctx.fv)
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
