"""The deployable network: every stage as integers, exactly what runs on Lava / Loihi 2.

`from_model` quantizes a trained FSVAE/ESVAE with lava-dl's rules into a `DeployNet`;
the `.net` file stores a DeployNet and reads back into one, and both the batched
emulator (`neurovae.emulator`) and the Lava compiler (`neurovae.loihi_runtime`) run it.
Layer weights keep PyTorch layouts: conv (out, in, kh, kw), convT (in, out, kh, kw),
dense (out, in); populations are flat in (C, H, W) order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .neuron import NeuronParams, quantize_weight, WEIGHT_SCALE, BIAS_MIN, BIAS_MAX

SIGMOID_SHIFT = 24          # ESVAE prior: y = W eps in units of 2**-24
PRIOR_WEIGHT_SHIFT = 8      # ESVAE prior weights in units of 2**-8 (sqrt(3) folded in)


@dataclass
class Layer:
    """One synaptic connection and the neuron population it drives."""

    name: str
    kind: str                   # input | conv | convT | dense | readout
    in_shape: tuple
    out_shape: tuple
    weight: np.ndarray          # int64
    neuron: NeuronParams
    stride: int = 1
    padding: int = 0
    bias: np.ndarray | None = None   # bias mantissa per output channel / neuron

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))


@dataclass
class DeployNet:
    """A whole spiking VAE in integers, plus the clock it runs on."""

    kind: str                   # fsvae | esvae
    image_shape: tuple          # (C, H, W)
    T: int
    latent: int
    k: int
    n_steps: int                # hardware steps per image
    encoder: list
    decoder: list
    readout: Layer
    posterior: list = field(default_factory=list)   # FSVAE loop layers (l1 takes [ext | z])
    prior: list = field(default_factory=list)       # FSVAE loop layers (l1 takes z)
    sampler: dict = field(default_factory=dict)     # FSVAE: k; ESVAE: window_start, sample_start
    prior_linear: dict = field(default_factory=dict)  # ESVAE: weight, bias, thresholds
    seed: int = 0
    config: dict = field(default_factory=dict)      # the training config, for reference

    def stages(self) -> dict:
        return {"encoder": self.encoder, "posterior": self.posterior, "prior": self.prior,
                "decoder": self.decoder, "readout": [self.readout]}


def _qw(block) -> np.ndarray:
    """Integer weights of a lava-dl block: (out, in) for dense, 4-D for conv/convT."""
    w = quantize_weight(block.synapse.weight)
    if all(d == 1 for d in w.shape[2:]):
        return w.reshape(w.shape[0], -1).numpy()
    return w.reshape(w.shape[:-1]).numpy()


def _qb(b: torch.Tensor) -> np.ndarray:
    return torch.round(b.detach().double() * WEIGHT_SCALE).clamp(BIAS_MIN, BIAS_MAX).long().numpy()


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


def sigmoid_thresholds(T: int) -> np.ndarray:
    """y thresholds (units 2**-24) where round(sigmoid(y) * T) steps up: count = #(y >= th)."""
    th = [math.log((j - 0.5) / (T - j + 0.5)) for j in range(1, T + 1)]
    return np.array([round(x * 2 ** SIGMOID_SHIFT) for x in th], dtype=np.int64)


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
        net.sampler = {"type": "pick", "k": cfg.k, "latent_start": model.latent_start}
    else:
        w = model.prior.weight.detach().double() * math.sqrt(3) * 2 ** PRIOR_WEIGHT_SHIFT
        b = model.prior.bias.detach().double() * 2 ** SIGMOID_SHIFT
        net.sampler = {"type": "rate", "window_start": model.window_start,
                       "sample_start": model.sample_start, "T": cfg.T}
        net.prior_linear = {"weight": torch.round(w).long().numpy(),
                            "bias": torch.round(b).long().numpy(),
                            "thresholds": sigmoid_thresholds(cfg.T)}
    return net
