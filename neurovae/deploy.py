"""Quantize a trained FSVAE/ESVAE into its deployable integer form (`hw.net.DeployNet`).

The training side's half of export: it reads the model's lava-dl blocks with lava-dl's
weight rule; the `.net` writer (`neurovae.export`) then stores the DeployNet.
"""
from __future__ import annotations

import numpy as np
import torch

from .hw.net import DeployNet, Layer
from .hw.neuron import quantize_bias_int, quantize_weight
from .models.spiking import float_weight


def _qw(block) -> np.ndarray:
    """Integer weights of a lava-dl block: (out, in) for dense, 4-D for conv/convT."""
    w = quantize_weight(float_weight(block))
    if all(d == 1 for d in w.shape[2:]):
        return w.reshape(w.shape[0], -1).numpy()
    return w.reshape(w.shape[:-1]).numpy()


def _qb(b: torch.Tensor) -> np.ndarray:
    return quantize_bias_int(b).numpy()


def _encoder(model, cfg, p) -> list:
    enc = model.encoder
    c, s = cfg.channels, cfg.image_size
    layers = []
    chans = (c,) + tuple(cfg.enc_channels)
    for i, block in enumerate([enc.input] + list(enc.convs)):
        layers.append(Layer(f"conv{i}" if i else "input", "input" if i == 0 else "conv",
                            (chans[i], s, s), (chans[i + 1], s // 2, s // 2), _qw(block), p,
                            stride=2, padding=1))
        s //= 2
    layers.append(Layer("dense", "dense", (chans[-1] * s * s,), (cfg.latent,), _qw(enc.dense), p))
    return layers


def _decoder(model, cfg, p) -> tuple[list, Layer]:
    dec = model.decoder
    ch, side = tuple(cfg.dec_channels), dec.side
    layers = [Layer("dense", "dense", (cfg.latent,), (ch[0] * side * side,), _qw(dec.dense), p)]
    for i, block in enumerate(dec.ups):
        layers.append(Layer(f"convT{i}", "convT", (ch[i], side, side),
                            (ch[i + 1], side * 2, side * 2), _qw(block), p, stride=2, padding=1))
        side *= 2
    readout = Layer("readout", "readout", (ch[-1], side, side), (cfg.channels, side, side),
                    _qw(dec.final), cfg.readout_neuron, stride=1, padding=1,
                    bias=_qb(dec.readout.bias))
    return layers, readout


def _loop(loop, cfg, p, name) -> list:
    C, k = cfg.latent, cfg.k
    w_ext, w_fb, w2, w3 = (None if b is None else _qw(b) for b in
                           (loop.ext, loop.fb, loop.l2, loop.l3))
    w1 = w_fb if w_ext is None else np.concatenate([w_ext, w_fb], axis=1)
    b1, b2, b3 = (_qb(b) for b in loop.biases)
    return [Layer(f"{name}1", "dense", (w1.shape[1],), (2 * C,), w1, p, bias=b1),
            Layer(f"{name}2", "dense", (2 * C,), (4 * C,), w2, p, bias=b2),
            Layer(f"{name}3", "dense", (4 * C,), (C * k,), w3, p, bias=b3)]


def from_model(model, seed: int = 0) -> DeployNet:
    """Quantize a trained spiking VAE into its deployable integer form."""
    cfg = model.cfg
    p = cfg.neuron
    enc = _encoder(model, cfg, p)
    dec, readout = _decoder(model, cfg, p)
    net = DeployNet(kind=model.kind, image_shape=(cfg.channels, cfg.image_size, cfg.image_size),
                    T=cfg.T, latent=cfg.latent, k=cfg.k if model.kind == "fsvae" else 1,
                    n_steps=model.n_steps, encoder=enc, decoder=dec, readout=readout, seed=seed,
                    config=cfg.to_dict())
    if model.kind == "fsvae":
        net.posterior = _loop(model.posterior, cfg, p, "post")
        net.prior = _loop(model.prior, cfg, p, "prior")
        net.sampler = {"type": "pick", "k": cfg.k, "T": cfg.T}
    else:
        net.sampler = {"type": "window", "window_start": model.window_start,
                       "sample_start": model.sample_start, "T": cfg.T}
        net.prior_linear = model.integer_prior()
    return net
