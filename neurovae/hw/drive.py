"""The input drive rule: the image enters as a constant integer drive into the input layer.

drive = floor(conv(image bytes, W) / 256): bytes/256 times weights/64, on the hardware's
1/64 grid. On the graph the bytes are graded 8-bit spikes into a Sparse connection with
weight_exp = -8 (Lava shifts the integer sum right by 8: a floor); the input neurons
receive the drive at every step of their window.
"""
from __future__ import annotations

import torch


INPUT_SHIFT = 8          # bytes/256 x weights/64, x 64: the Sparse's weight_exp = -8


def input_drive(layer, x_bytes) -> torch.Tensor:
    """Integer drive (N, n_out) int64 of the input layer for image bytes (N, C, H, W)."""
    x = torch.as_tensor(x_bytes).reshape(len(x_bytes), *layer.in_shape).double()
    w = torch.as_tensor(layer.weight, dtype=torch.float64)
    a = torch.round(layer.spec.apply(layer, x, w)).long().reshape(len(x), -1)
    return a >> INPUT_SHIFT
