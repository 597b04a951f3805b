"""Readable summary of a `.net` file: stages, layers, shapes, neurons, synapses, bits."""
from __future__ import annotations

import numpy as np

from neurovae.hw.net import DeployNet, Layer


def synapses(layer: Layer) -> int:
    """Exact number of synapses: nonzero entries of the layer's unrolled connection matrix."""
    return layer.spec.synapse_count(layer)


def weight_bits(layer: Layer) -> int:
    w = np.asarray(layer.weight)
    m = int(np.abs(w).max()) if w.size else 0
    return max(1, m.bit_length()) + (1 if w.min() < 0 else 0)


def summary(net: DeployNet, path: str = "") -> str:
    lines = [f"{path}: {net.kind.upper()}  image {net.image_shape}  latent {net.latent}"
             + (f" x k={net.k}" if net.kind == "fsvae" else "")
             + f"  T={net.T}  clock {net.n_steps} steps/image  PRNG seed {net.seed}",
             f"{'stage':10} {'layer':10} {'type':7} {'in':>14} {'out':>14} {'neurons':>8} "
             f"{'synapses':>10} {'wbits':>5} {'vth':>5} {'iDec':>5} {'vDec':>5}"]
    tot_n = tot_s = 0
    for stage, layers in net.stages().items():
        for l in layers:
            n, s = l.n_out, synapses(l)
            tot_n, tot_s = tot_n + n, tot_s + s
            lines.append(f"{stage:10} {l.name:10} {l.kind:7} {str(tuple(l.in_shape)):>14} "
                         f"{str(tuple(l.out_shape)):>14} {n:8d} {s:10d} {weight_bits(l):5d} "
                         f"{l.neuron.vth_mant:5d} {l.neuron.i_decay:5d} {l.neuron.v_decay:5d}")
    sm = ", ".join(f"{k}={v}" for k, v in net.sampler.items())
    lines.append(f"sampler: {sm}")
    if net.prior_linear:
        mix = net.prior_linear.get("bounds")
        what = (f"mixture of {len(mix) + 1} Gaussians, each " if mix is not None else "")
        lines.append(f"prior: {what}linear {net.latent}x{net.latent} -> sigmoid rate -> "
                     f"count of {net.T}")
    lines.append(f"total: {tot_n} neurons, {tot_s} synapses")
    return "\n".join(lines)
