"""The readout rule: a non-firing leaky integrator read after the last step, then tanh.

On the graph it is a LIF population with current decay 4096, the layer's voltage decay and
an unreachable threshold; its voltage v (hardware units) after the image's last step gives
the pixel tanh(v / 4096), in [-1, 1] like the papers' images.
"""
from __future__ import annotations

import torch

from .neuron import STATE_SCALE, VTH_MAX, NeuronParams


def readout_neuron(v_decay: int) -> NeuronParams:
    """The integrator as a LIF: current is the step's input only, threshold never reached."""
    return NeuronParams(i_decay=4096, v_decay=v_decay, vth_mant=VTH_MAX)


def readout_image(v, shape) -> torch.Tensor:
    """Readout voltage (hardware units, (N, pixels)) -> image in [-1, 1], as float64."""
    return torch.tanh(torch.as_tensor(v).double() / STATE_SCALE).view(-1, *shape)


def to_signed(x_bytes, dtype=torch.float32) -> torch.Tensor:
    """Image bytes 0..255 -> [-1, 1] (the papers' pixel scale, the readout's range)."""
    return torch.as_tensor(x_bytes).to(dtype) / 127.5 - 1.0
