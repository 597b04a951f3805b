"""Each layer kind defined once: its shape rule, synapses, lowering, file entries and NIR.

A `Layer.kind` names one `LayerKind` in `KINDS`. The simulators, the Lava graph, inspect,
the NIR exporter, the writer and the loader ask the kind instead of branching on its name,
as lava-dl's blocks export themselves. Weights keep PyTorch layouts: conv (out, in, kh, kw),
convT (in, out, kh, kw), dense (out, in); populations are flat in (C, H, W) order.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class LayerKind:
    """What every kind provides; `spatial` kinds take a (C, H, W) input and a 4-D kernel."""

    name = ""
    file_type = ""              # the `type` string in a .net file (netx's names)
    spatial = True
    transposed = False
    host_drive = False          # fed by the host's image bytes as graded spikes (`drive` group)
    in_nir = True               # NIR 1.0 has a primitive for this connection

    # ---- shapes and arithmetic
    def channels(self, w) -> tuple[int, int]:
        """(inputs, outputs) channels of a weight array."""
        return (w.shape[1], w.shape[0])

    def out_shape(self, in_shape, w, stride: int, padding: int) -> tuple:
        c, h, wd = in_shape
        k = w.shape[2]
        return (w.shape[0], (h + 2 * padding - k) // stride + 1, (wd + 2 * padding - k) // stride + 1)

    def apply(self, layer, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Synaptic input for source spikes x (M, *in_shape), as conv2d on the integers."""
        return F.conv2d(x, w, stride=layer.stride, padding=layer.padding)

    def out_channel_weights(self, w: np.ndarray) -> np.ndarray:
        """The weights reaching each output channel, one row per channel."""
        return w.reshape(w.shape[0], -1)

    def unrolled(self, layer):
        """The connection as a sparse (n_out, n_in) CSR matrix (what Lava's Sparse holds)."""
        import scipy.sparse as sp
        r, c, v = _conv_entries(np.asarray(layer.weight, np.int64), layer.in_shape,
                                layer.out_shape, layer.stride, layer.padding, self.transposed)
        m = sp.coo_matrix((v, (r, c)), shape=(layer.n_out, layer.n_in)).tocsr()
        m.sum_duplicates()
        m.eliminate_zeros()
        return m

    def synapse_count(self, layer) -> int:
        """Exact number of synapses: nonzero entries of the unrolled matrix."""
        w = np.asarray(layer.weight)
        k = w.shape[2]
        _, h, wd = layer.in_shape
        _, ho, wo = layer.out_shape
        rows = _valid(h, ho, layer.stride, layer.padding, k, self.transposed)
        cols = _valid(wd, wo, layer.stride, layer.padding, k, self.transposed)
        nnz = (w != 0).sum(axis=(0, 1))              # per (ky, kx)
        return int((nnz * rows[:, None] * cols[None, :]).sum())

    # ---- NIR
    def nir_synapse(self, nir, layer, weight, bias):
        """The NIR node of this connection, or None where NIR has no primitive for it."""
        return nir.Conv2d(input_shape=tuple(int(s) for s in layer.in_shape[1:]), weight=weight,
                          stride=int(layer.stride), padding=int(layer.padding), dilation=1,
                          groups=1, bias=bias, metadata={"layer": layer.name})


class Conv(LayerKind):
    name = file_type = "conv"


class Input(Conv):
    """The first convolution: image bytes as graded spikes through a Sparse (weight_exp -8)."""
    name = file_type = "input"
    host_drive = True


class Readout(Conv):
    """The last convolution, into the non-firing readout integrators (a `conv` in files)."""
    name, file_type = "readout", "conv"


class ConvT(LayerKind):
    name = file_type = "convT"
    transposed = True
    in_nir = False

    def channels(self, w):
        return (w.shape[0], w.shape[1])

    def out_shape(self, in_shape, w, stride, padding):
        c, h, wd = in_shape
        k = w.shape[2]
        return (w.shape[1], (h - 1) * stride - 2 * padding + k, (wd - 1) * stride - 2 * padding + k)

    def apply(self, layer, x, w):
        return F.conv_transpose2d(x, w, stride=layer.stride, padding=layer.padding)

    def out_channel_weights(self, w):
        return w.swapaxes(0, 1).reshape(w.shape[1], -1)


class Dense(LayerKind):
    name = file_type = "dense"
    spatial = False

    def out_shape(self, in_shape, w, stride, padding):
        return (w.shape[0],)

    def apply(self, layer, x, w):
        return x.reshape(len(x), -1) @ w.T

    def unrolled(self, layer):
        return np.asarray(layer.weight, np.int64)

    def synapse_count(self, layer):
        return int(np.count_nonzero(np.asarray(layer.weight)))

    def nir_synapse(self, nir, layer, weight, bias):
        return nir.Affine(weight=weight, bias=bias, metadata={"layer": layer.name})


KINDS: dict[str, LayerKind] = {k.name: k for k in (Input(), Conv(), ConvT(), Dense(), Readout())}
FILE_TYPES: dict[str, LayerKind] = {k.file_type: k for k in (Input(), Conv(), ConvT(), Dense())}


def kind_of(layer) -> LayerKind:
    return KINDS[layer.kind]


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


def _conv_entries(w, in_shape, out_shape, stride, pad, transposed):
    """(rows, cols, values) of the unrolled (transposed) convolution."""
    ci_n, h, wd = in_shape
    co_n, ho, wo = out_shape
    k = w.shape[2]
    rows, cols, vals = [], [], []
    for ky in range(k):
        for kx in range(k):
            wk = w[:, :, ky, kx]                  # conv: (co, ci); convT: (ci, co)
            if transposed:
                iy, ix = np.meshgrid(np.arange(h), np.arange(wd), indexing="ij")
                oy, ox = iy * stride - pad + ky, ix * stride - pad + kx
                ok = (oy >= 0) & (oy < ho) & (ox >= 0) & (ox < wo)
                iy, ix, oy, ox = iy[ok], ix[ok], oy[ok], ox[ok]
                ci, co = np.nonzero(wk)
            else:
                oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
                iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
                ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < wd)
                iy, ix, oy, ox = iy[ok], ix[ok], oy[ok], ox[ok]
                co, ci = np.nonzero(wk)
            if not len(co) or not len(iy):
                continue
            v = wk[ci, co] if transposed else wk[co, ci]
            rows.append((co[:, None] * ho * wo + (oy * wo + ox)[None, :]).ravel())
            cols.append((ci[:, None] * h * wd + (iy * wd + ix)[None, :]).ravel())
            vals.append(np.repeat(v, len(iy)))
    if not rows:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
