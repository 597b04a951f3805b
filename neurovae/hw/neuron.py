"""Loihi's CUBA LIF neuron in integers: constants, quantization grid, and the one step rule.

Units: lava-dl keeps states in "float units" = hardware units / 4096 (``STATE_SCALE``);
weights are even integers in [-256, 254] = float weight * 64 (``WEIGHT_SCALE``); threshold
mantissa = float threshold * 64; decays are 12-bit (x 4096). `lif_step` is Lava's
bit-accurate LIF (``PyLifModelBitAcc``) with netx's parameter mapping (du = iDecay - 1,
bias exponent 6). It serves numpy and torch arrays alike; every other LIF implementation
(numba kernels, simulators, training's float step) is tested against it.
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

    @property
    def threshold_hw(self) -> int:
        """Spike when v exceeds this (hardware units)."""
        return self.vth_mant << ACT_SHIFT

    def slayer_params(self) -> dict:
        """Keyword arguments for lava-dl's ``cuba.Neuron`` giving exactly these integers."""
        return dict(threshold=self.threshold, current_decay=self.i_decay / DECAY_UNITY,
                    voltage_decay=self.v_decay / DECAY_UNITY, tau_grad=self.tau_grad,
                    scale_grad=self.scale_grad)


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """lava-dl's 8-bit weight rule (step 2/64, clamp [-256, 254]/64) as integer tensor."""
    return (torch.round(w.detach().double() * (WEIGHT_SCALE / 2)) * 2).clamp(
        WEIGHT_MIN, WEIGHT_MAX).to(torch.int64)


def quantize_bias_int(b: torch.Tensor) -> torch.Tensor:
    """Bias mantissa of a float bias: round(b * 64), 13-bit signed."""
    return torch.round(b.detach().double() * WEIGHT_SCALE).clamp(BIAS_MIN, BIAS_MAX).long()


def _xp(x):
    return torch if isinstance(x, torch.Tensor) else np


def decay(x, d: int):
    """Loihi's decay sign(x) * ((|x| * (4096 - d)) >> 12), rounding toward zero.

    Integers in int64 or held exactly in float64 (numpy or torch)."""
    xp = _xp(x)
    return xp.sign(x) * ((xp.abs(x) * (DECAY_UNITY - d)) // DECAY_UNITY)


class StateOverflow(ArithmeticError):
    """A neuron state left the 24-bit range, where Loihi wraps or saturates."""


def max_abs(x) -> int:
    """Largest |x| of an array or tensor (0 when empty)."""
    if isinstance(x, torch.Tensor):
        return int(x.abs().max()) if x.numel() else 0
    return int(np.abs(x).max()) if np.size(x) else 0


def lif_step(u, v, a, p: NeuronParams, bias=0, check: bool = True):
    """One bit-accurate CUBA LIF step; returns (u, v, spikes as bool).

    ``a`` is the integer synaptic input (weights x spikes, or the graded input drive);
    ``bias`` the bias mantissa. Spiking neurons reset v to 0. With ``check`` a state
    outside Loihi's 24-bit range raises StateOverflow instead of emulating a wrap.
    """
    u = decay(u, p.i_decay) + a * (1 << ACT_SHIFT)
    v = decay(v, p.v_decay) + u + bias * (1 << BIAS_EXP)
    if check:
        peak = max(max_abs(u), max_abs(v))
        if peak >= UV_LIMIT - 1:
            raise StateOverflow(f"neuron state {peak} exceeds Loihi's 24-bit range")
    s = v > p.threshold_hw
    v = v * ~s
    return u, v, s
