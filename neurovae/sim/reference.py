"""The step-by-step reference simulator of the deployed Lava graph (the `reference` backend).

Runs a `DeployNet` one step of the phase clock (`neurovae.hw.clock`) at a time with Loihi's
integer arithmetic, vectorized over images: every population starts its window from zero;
a connection delivers a step's spikes within that step of the next population's window;
only the FSVAE feedback z -> L1 arrives LOOP_LATENCY steps later. The samplers are the AND
neurons' rules (`neurovae.hw.sampling`). Synaptic sums are exact integers (float64
convolutions of integers stay exact here).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..hw import sampling
from ..hw.clock import LOOP_LATENCY
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

    def step_from(self, src: torch.Tensor) -> torch.Tensor:
        """Step with the synaptic input of this step's source spikes."""
        return self.step(synapse(self.layer, src))


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
        zs: list[torch.Tensor] = []
        window: list[torch.Tensor] = []          # ESVAE: encoder spikes of the rate window
        counts = None
        if gen and net.kind == "esvae":
            counts = sampling.prior_counts(net.prior_linear, seed, images)
        pick_seed = sampling.sampler_seed(seed, gen)
        for t in range(S):
            if enc:
                enc[0].step(drive)
                for i in range(1, len(enc)):
                    enc[i].step_from(enc[i - 1].s)
            if net.kind == "fsvae":
                fb = zs[t - LOOP_LATENCY] if t >= LOOP_LATENCY else torch.zeros(
                    n, net.latent, dtype=torch.int64)
                loop[0].step_from(fb if gen else torch.cat([enc[-1].s, fb], 1))
                for i in (1, 2):
                    loop[i].step_from(loop[i - 1].s)
                z = (sampling.pick(loop[2].s, net.k, pick_seed, images, t)
                     if t < net.sampler["T"] else torch.zeros(n, net.latent, dtype=torch.int64))
            else:
                counting, sampling_now = sampling.in_window(net.sampler, t)
                if counting and not gen:
                    window.append(enc[-1].s)
                z = torch.zeros(n, net.latent, dtype=torch.int64)
                if sampling_now:
                    z = (sampling.rate_spikes(counts, net.T, seed, images, t) if gen else
                         sampling.window_pick(torch.stack(window, -1), net.T, seed, images, t))
            zs.append(z)
            dec[0].step_from(z)
            for i in range(1, len(dec)):
                dec[i].step_from(dec[i - 1].s)
            readout.step_from(dec[-1].s)
            if record:
                for stage, pops in (("encoder", enc), ("latent", loop), ("decoder", dec)):
                    for p in pops:
                        rec.setdefault(f"{stage}/{p.layer.name}", []).append(p.s.to(torch.uint8))
                rec.setdefault("sampler/z", []).append(z.to(torch.uint8))
        records = {k: torch.stack(v, -1) for k, v in rec.items()}
        if record:
            records["readout_v"] = readout.v
        return readout_image(readout.v, net.readout.out_shape), records
