"""Multiply-accumulates of the ANN VAE baseline, counted on the built model for a fair comparison.

Forward hooks on a real `ann-vae` model (same Config) record every Conv2d, ConvTranspose2d
and Linear call's shapes; MACs are what a dense implementation computes (padding taps
included, as in common FLOP counters). Norms, activations and bias adds are not MACs.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from .config import Config

MODES = ("generation", "reconstruction")


def _macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """MACs of one call, per image: outputs x inputs per output (conv, linear) or per input (convT)."""
    n = inp.shape[0]
    if isinstance(module, nn.Linear):
        return out.numel() // n * module.in_features
    k = math.prod(module.kernel_size)
    if isinstance(module, nn.ConvTranspose2d):    # each input scatters a full (C_out, k) kernel
        return inp.numel() // n * (module.out_channels // module.groups) * k
    return out.numel() // n * (module.in_channels // module.groups) * k


def _config(config) -> Config:
    cfg = config if isinstance(config, Config) else Config.from_dict(dict(config))
    return dataclasses.replace(cfg, model="ann-vae")


def ann_macs(config, mode: str = "generation") -> dict:
    """MACs per image of each Conv/ConvT/Linear layer the ANN VAE runs in `mode`, and their total.

    generation = the decoder from a sampled latent; reconstruction = encoder, mu, decoder.
    Returns {"mode", "layers": {name: macs}, "total"}; names are the model's module paths.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    from .models import build_model
    model = build_model(_config(config)).eval()
    names = {m: name for name, m in model.named_modules()}
    layers: dict[str, int] = {}

    def hook(module, args, out):
        key = names[module]
        layers[key] = layers.get(key, 0) + _macs(module, args[0], out)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        if mode == "generation":
            model.sample(1, seed=0)
        else:
            cfg = model.cfg
            x = torch.zeros(1, cfg.channels, cfg.image_size, cfg.image_size, dtype=torch.uint8)
            model.reconstruct(x)
    finally:
        for h in handles:
            h.remove()
    return {"mode": mode, "layers": layers, "total": sum(layers.values())}
