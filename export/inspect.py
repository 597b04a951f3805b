"""Readable summary of a `.net` file: stages, layers, shapes, neurons, synapses, bits."""
from __future__ import annotations

import numpy as np

from neurovae.deploy import DeployNet, Layer


def _valid(n_src: int, n_dst: int, stride: int, pad: int, k: int, transposed: bool) -> np.ndarray:
    """Per kernel offset, how many (source, destination) positions along one axis it joins."""
    counts = np.zeros(k, np.int64)
    for off in range(k):
        if transposed:
            dst = np.arange(n_src) * stride - pad + off
        else:
            dst = np.arange(n_dst) * stride - pad + off   # the source row each output reads
        lim = n_dst if transposed else n_src
        counts[off] = int(((dst >= 0) & (dst < lim)).sum())
    return counts


def synapses(layer: Layer) -> int:
    """Exact number of synapses: nonzero entries of the layer's unrolled connection matrix."""
    w = np.asarray(layer.weight)
    if layer.kind == "dense":
        return int(np.count_nonzero(w))
    k, tr = w.shape[2], layer.kind == "convT"
    _, h, wd = layer.in_shape
    _, ho, wo = layer.out_shape
    rows = _valid(h, ho, layer.stride, layer.padding, k, tr)
    cols = _valid(wd, wo, layer.stride, layer.padding, k, tr)
    nnz = (w != 0).sum(axis=(0, 1))              # per (ky, kx)
    return int((nnz * rows[:, None] * cols[None, :]).sum())


def weight_bits(layer: Layer) -> int:
    w = np.asarray(layer.weight)
    m = int(np.abs(w).max()) if w.size else 0
    return max(1, m.bit_length()) + (1 if w.min() < 0 else 0)


def summary(net: DeployNet, path: str = "") -> str:
    lines = [f"{path}: {net.kind.upper()}  image {net.image_shape}  latent {net.latent}"
             + (f" x k={net.k}" if net.kind == "fsvae" else "")
             + f"  T={net.T}  clock {net.n_steps} steps/image  PRNG seed {net.seed}",
             f"{'stage':10} {'layer':10} {'type':6} {'in':>14} {'out':>14} {'neurons':>8} "
             f"{'synapses':>10} {'wbits':>5} {'vth':>5} {'iDec':>5} {'vDec':>5}"]
    tot_n = tot_s = 0
    for stage, layers in net.stages().items():
        for l in layers:
            n, s = l.n_out, synapses(l)
            tot_n, tot_s = tot_n + n, tot_s + s
            lines.append(f"{stage:10} {l.name:10} {l.kind[:6]:6} {str(tuple(l.in_shape)):>14} "
                         f"{str(tuple(l.out_shape)):>14} {n:8d} {s:10d} {weight_bits(l):5d} "
                         f"{l.neuron.vth_mant:5d} {l.neuron.i_decay:5d} {l.neuron.v_decay:5d}")
    sm = ", ".join(f"{k}={v}" for k, v in net.sampler.items())
    lines.append(f"sampler: {sm}")
    if net.prior_linear:
        lines.append(f"prior: linear {net.latent}x{net.latent} -> sigmoid rate -> count of {net.T}")
    lines.append(f"total: {tot_n} neurons, {tot_s} synapses")
    return "\n".join(lines)
