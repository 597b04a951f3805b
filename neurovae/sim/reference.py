"""Batched fixed-point emulator of the deployed Lava graph (the `torch` backend, deploy mode).

Runs a `DeployNet` step by step with Loihi's integer arithmetic, vectorized over images:
at t = 0 every population starts from zero and ignores its input; every connection
delivers at t the spikes of t-1; the input drive and the samplers act within the step.
Synaptic sums are exact integers (float64 convolutions of integers stay exact here).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import prng
from .deploy import DeployNet, Layer
from .models.spiking import gaussian_int, pick_candidates
from .neuron import lif_step_int, round_half_even_div
from .prng import PRIOR_SEED_SALT

INPUT_SHIFT = 8          # drive = round(conv(bytes, W) / 2**8): bytes/256 x weights/64, x 64


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def synapse(layer: Layer, s: torch.Tensor) -> torch.Tensor:
    """Integer synaptic input of `layer` from flat source spikes s (N, n_in) -> (N, n_out)."""
    n = s.shape[0]
    w = _t(layer.weight)
    if layer.kind == "dense":
        a = s.double() @ w.T
    else:
        x = s.double().view(n, *layer.in_shape)
        if layer.kind == "convT":
            a = F.conv_transpose2d(x, w, stride=layer.stride, padding=layer.padding)
        else:
            a = F.conv2d(x, w, stride=layer.stride, padding=layer.padding)
    return torch.round(a).long().reshape(n, -1)


def input_drive(layer: Layer, x_bytes: torch.Tensor) -> torch.Tensor:
    """Integer drive of the input layer: round-half-even(conv(bytes, W) / 256), flat."""
    a = synapse(layer, x_bytes.reshape(len(x_bytes), -1).long())
    return round_half_even_div(a, INPUT_SHIFT)


def bias_of(layer: Layer) -> torch.Tensor | int:
    """Per-neuron bias mantissa (channel biases broadcast over space)."""
    if layer.bias is None:
        return 0
    b = torch.as_tensor(np.asarray(layer.bias), dtype=torch.int64)
    if b.numel() != layer.n_out:
        b = b.repeat_interleave(layer.n_out // b.numel())
    return b


def readout_image(v: torch.Tensor, shape) -> torch.Tensor:
    """Readout voltage (hardware units) -> image in [-1, 1], as float64."""
    return torch.tanh(v.double() / 4096.0).view(-1, *shape)


def rate_spikes(counts: torch.Tensor, T: int, seed: int, images: torch.Tensor, t: int):
    """ESVAE Bernoulli spikes at step t: (PRNG mod T) < count."""
    m = prng.randint_torch(seed, images[:, None], t, torch.arange(counts.shape[1])[None, :], T)
    return (m < counts).long()


def prior_counts(net: DeployNet, seed: int, images: torch.Tensor) -> torch.Tensor:
    """ESVAE prior: integer Gaussian eps -> integer linear -> count = #(y >= thresholds)."""
    eps = gaussian_int(seed ^ PRIOR_SEED_SALT, images, torch.arange(net.latent))
    w = torch.as_tensor(net.prior_linear["weight"], dtype=torch.int64)
    b = torch.as_tensor(net.prior_linear["bias"], dtype=torch.int64)
    y = eps @ w.T + b
    th = torch.as_tensor(net.prior_linear["thresholds"], dtype=torch.int64)
    return (y.unsqueeze(-1) >= th).sum(-1)


class Population:
    """A CUBA LIF population fed by one connection (or a graded drive)."""

    def __init__(self, layer: Layer, n: int):
        self.layer, self.bias = layer, bias_of(layer)
        self.u = torch.zeros(n, layer.n_out, dtype=torch.int64)
        self.v = torch.zeros_like(self.u)
        self.s = torch.zeros_like(self.u)

    def step(self, a: torch.Tensor) -> torch.Tensor:
        self.u, self.v, s = lif_step_int(self.u, self.v, a, self.layer.neuron, self.bias)
        self.s = s.long()
        return self.s


class Emulator:
    """Run reconstruction or generation of a DeployNet on batches of images."""

    def __init__(self, net: DeployNet):
        self.net = net

    def run(self, x_bytes: torch.Tensor | None, n: int, seed: int, first_image: int = 0,
            record: bool = False):
        """Reconstruct x_bytes (N, C, H, W uint8), or generate n images when x_bytes is None.

        Returns (images in [-1, 1] float64, records) where records maps a population name
        to its spikes (N, neurons, S) as uint8 when `record` is set.
        """
        net, S = self.net, self.net.n_steps
        gen = x_bytes is None
        n = n if gen else len(x_bytes)
        images = torch.arange(first_image, first_image + n)
        rec: dict[str, list] = {}
        enc = [] if gen else [Population(l, n) for l in net.encoder]
        loop_layers = (net.prior if gen else net.posterior) if net.kind == "fsvae" else []
        loop = [Population(l, n) for l in loop_layers]
        dec = [Population(l, n) for l in net.decoder]
        v_out = torch.zeros(n, net.readout.n_out, dtype=torch.int64)
        r_bias = bias_of(net.readout)
        drive = None if gen else input_drive(net.encoder[0], x_bytes)
        z_prev = torch.zeros(n, net.latent, dtype=torch.int64)
        counts = torch.zeros(n, net.latent, dtype=torch.int64)
        if gen and net.kind == "esvae":
            counts = prior_counts(net, seed, images)
        pick_seed = seed ^ PRIOR_SEED_SALT if gen else seed
        for t in range(S):
            # encoder: the input layer takes the drive in the same step; the rest lag one step
            if enc:
                prev = [p.s for p in enc]
                enc[0].step(drive if t else torch.zeros_like(drive))
                for i in range(1, len(enc)):
                    a = synapse(enc[i].layer, prev[i - 1]) if t else torch.zeros_like(enc[i].u)
                    enc[i].step(a)
            # latent
            if net.kind == "fsvae":
                prev = [p.s for p in loop]
                if t:
                    src = z_prev if gen else torch.cat([enc_prev_out, z_prev], 1)
                    a1 = synapse(loop[0].layer, src)
                else:
                    a1 = torch.zeros_like(loop[0].u)
                loop[0].step(a1)
                for i in (1, 2):
                    loop[i].step(synapse(loop[i].layer, prev[i - 1]) if t
                                 else torch.zeros_like(loop[i].u))
                z = pick_candidates(loop[2].s, net.k, pick_seed, images, t)
            else:
                sm = net.sampler
                if not gen and sm["window_start"] <= t < sm["sample_start"]:
                    counts = counts + enc[-1].s
                if sm["sample_start"] <= t < sm["sample_start"] + sm["T"]:
                    z = rate_spikes(counts, sm["T"], seed, images, t)
                else:
                    z = torch.zeros(n, net.latent, dtype=torch.int64)
            # decoder and readout, each connection delivering last step's spikes
            prev = [p.s for p in dec]
            dec[0].step(synapse(dec[0].layer, z_prev) if t else torch.zeros_like(dec[0].u))
            for i in range(1, len(dec)):
                dec[i].step(synapse(dec[i].layer, prev[i - 1]) if t
                            else torch.zeros_like(dec[i].u))
            a = synapse(net.readout, prev[-1]) if t else torch.zeros_like(v_out)
            _, v_out, _ = lif_step_int(torch.zeros_like(v_out), v_out, a, net.readout.neuron,
                                       r_bias)
            if record:
                for stage, pops in (("encoder", enc), ("latent", loop), ("decoder", dec)):
                    for p in pops:
                        rec.setdefault(f"{stage}/{p.layer.name}", []).append(p.s.to(torch.uint8))
                rec.setdefault("sampler/z", []).append(z.to(torch.uint8))
            if enc:
                enc_prev_out = enc[-1].s
            z_prev = z
        records = {k: torch.stack(v, -1) for k, v in rec.items()}
        if record:
            records["readout_v"] = v_out
        return readout_image(v_out, net.readout.out_shape), records
