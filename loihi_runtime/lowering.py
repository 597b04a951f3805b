"""Lower conv and transposed-conv layers to the sparse matrices Lava's Sparse runs.

Populations are flat in (C, H, W) order; the matrix maps source spikes to synaptic input
exactly as `conv2d` / `conv_transpose2d` on integers would (the emulator's arithmetic).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from neurovae.deploy import Layer


def _entries(w, in_shape, out_shape, stride, pad, transposed):
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


def layer_matrix(layer: Layer):
    """The layer's connection as (n_out, n_in): ndarray for dense, CSR for (transposed) conv."""
    w = np.asarray(layer.weight, np.int64)
    if layer.kind == "dense":
        return w
    r, c, v = _entries(w, layer.in_shape, layer.out_shape, layer.stride, layer.padding,
                       layer.kind == "convT")
    m = sp.coo_matrix((v, (r, c)), shape=(layer.n_out, layer.n_in)).tocsr()
    m.sum_duplicates()
    m.eliminate_zeros()
    return m
