"""Reconstruction terms of the spiking VAEs' loss: MSE (the papers') or Bernoulli BCE.

Images and reconstructions are in [-1, 1]; the readout gives recon = tanh(u). BCE reads
(recon + 1) / 2 = sigmoid(2u) as the pixel's probability of white, so its gradient in u
is recon - target and does not vanish where tanh saturates, as MSE's does. It changes
only what training minimizes: the deployed integers and their arithmetic stay the same.
"""
from __future__ import annotations

import torch

from ..config import RECON_LOSSES
from ..hw.readout import to_signed

_EPS = 1e-6


def to_target(x_bytes: torch.Tensor) -> torch.Tensor:
    """Reconstruction target in [-1, 1], as the papers."""
    return to_signed(x_bytes)


def bce(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of pixels in [-1, 1], each read as P(white) = (x + 1) / 2."""
    p = ((recon + 1) / 2).clamp(_EPS, 1 - _EPS)
    t = (target + 1) / 2
    return -torch.mean(t * torch.log(p) + (1 - t) * torch.log1p(-p))


def recon_terms(recon: torch.Tensor, x_bytes: torch.Tensor, kind: str) -> tuple:
    """(the loss's reconstruction term, the MSE that is reported either way)."""
    target = to_target(x_bytes)
    mse = torch.mean((recon - target) ** 2)
    if kind == "mse":
        return mse, mse
    if kind == "bce":
        return bce(recon, target), mse
    raise ValueError(f"unknown recon_loss '{kind}'; choose one of {', '.join(RECON_LOSSES)}")
