"""The step-by-step reference simulator of the deployed Lava graph (the `reference` backend).

Runs a `DeployNet` one hardware step at a time with Loihi's integer arithmetic, vectorized
over images: at t = 0 every population starts from zero and ignores its input; every
connection delivers at t the spikes of t-1; the input drive and the samplers act within the
step. Synaptic sums are exact integers (float64 convolutions of integers stay exact here).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..hw import sampling
from ..hw.drive import input_drive
from ..hw.net import DeployNet, Layer
from ..hw.neuron import lif_step
from ..hw.readout import readout_image, readout_neuron


def synapse(layer: Layer, s: torch.Tensor) -> torch.Tensor:
    """Integer synaptic input of `layer` from flat source spikes s (N, n_in) -> (N, n_out)."""
    n = s.shape[0]
    w = torch.as_tensor(np.asarray(layer.weight), dtype=torch.float64)
    x = s.double().view(n, *layer.in_shape)
    return torch.round(layer.spec.apply(layer, x, w)).long().reshape(n, -1)


class Population:
    """A CUBA LIF population fed by one connection (or a graded drive)."""

    def __init__(self, layer: Layer, n: int):
        self.layer = layer
        self.bias = torch.as_tensor(layer.bias_per_neuron())
        self.u = torch.zeros(n, layer.n_out, dtype=torch.int64)
        self.v = torch.zeros_like(self.u)
        self.s = torch.zeros_like(self.u)

    def step(self, a: torch.Tensor) -> torch.Tensor:
        self.u, self.v, s = lif_step(self.u, self.v, a, self.layer.neuron, self.bias)
        self.s = s.long()
        return self.s

    def step_from(self, src: torch.Tensor | None, t: int) -> torch.Tensor:
        """Step with the synaptic input of last step's source spikes (none at t = 0)."""
        return self.step(synapse(self.layer, src) if t else torch.zeros_like(self.u))


class ReferenceSimulator:
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
        loop = [Population(l, n) for l in net.loop(gen)] if net.kind == "fsvae" else []
        dec = [Population(l, n) for l in net.decoder]
        readout = Population(dataclasses.replace(
            net.readout, neuron=readout_neuron(net.readout.neuron.v_decay)), n)
        drive = None if gen else input_drive(net.encoder[0], x_bytes)
        z_prev = torch.zeros(n, net.latent, dtype=torch.int64)
        enc_prev = None
        counts = torch.zeros(n, net.latent, dtype=torch.int64)
        if gen and net.kind == "esvae":
            counts = sampling.prior_counts(net.prior_linear, seed, images)
        pick_seed = sampling.sampler_seed(seed, gen)
        for t in range(S):
            # encoder: the input layer takes the drive in the same step; the rest lag one step
            if enc:
                prev = [p.s for p in enc]
                enc[0].step(drive if t else torch.zeros_like(drive))
                for i in range(1, len(enc)):
                    enc[i].step_from(prev[i - 1], t)
            # latent
            if net.kind == "fsvae":
                prev = [p.s for p in loop]
                src = None if t == 0 else z_prev if gen else torch.cat([enc_prev, z_prev], 1)
                loop[0].step_from(src, t)
                for i in (1, 2):
                    loop[i].step_from(prev[i - 1], t)
                z = sampling.pick(loop[2].s, net.k, pick_seed, images, t)
            else:
                counting, sampling_now = sampling.in_window(net.sampler, t)
                if not gen and counting:
                    counts = counts + enc[-1].s
                z = (sampling.rate_spikes(counts, net.T, seed, images, t) if sampling_now
                     else torch.zeros(n, net.latent, dtype=torch.int64))
            # decoder and readout, each connection delivering last step's spikes
            prev = [p.s for p in dec]
            dec[0].step_from(z_prev, t)
            for i in range(1, len(dec)):
                dec[i].step_from(prev[i - 1], t)
            readout.step_from(prev[-1], t)
            if record:
                for stage, pops in (("encoder", enc), ("latent", loop), ("decoder", dec)):
                    for p in pops:
                        rec.setdefault(f"{stage}/{p.layer.name}", []).append(p.s.to(torch.uint8))
                rec.setdefault("sampler/z", []).append(z.to(torch.uint8))
            if enc:
                enc_prev = enc[-1].s
            z_prev = z
        records = {k: torch.stack(v, -1) for k, v in rec.items()}
        if record:
            records["readout_v"] = readout.v
        return readout_image(readout.v, net.readout.out_shape), records
