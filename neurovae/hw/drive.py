"""The input drive rule: the image enters as a constant integer drive into the input layer.

drive = round_half_even(conv(image bytes, W) / 256): bytes/256 times weights/64, on the
hardware's 1/64 grid. The same integers reach the input neurons' a_in at steps 1..S-1.
"""
from __future__ import annotations

import torch

from .neuron import round_half_even_div

INPUT_SHIFT = 8          # bytes/256 x weights/64, x 64


def input_drive(layer, x_bytes) -> torch.Tensor:
    """Integer drive (N, n_out) int64 of the input layer for image bytes (N, C, H, W)."""
    x = torch.as_tensor(x_bytes).reshape(len(x_bytes), *layer.in_shape).double()
    w = torch.as_tensor(layer.weight, dtype=torch.float64)
    a = torch.round(layer.spec.apply(layer, x, w)).long().reshape(len(x), -1)
    return round_half_even_div(a, INPUT_SHIFT)
