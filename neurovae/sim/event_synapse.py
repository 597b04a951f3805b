"""Event-driven synaptic input: each binary spike adds its weights, in place of a dense product.

A spike is 0 or 1, so a layer's input is the sum of the weights of its active sources; at
the 5-30% activity of a trained net that is a fraction of a dense product's work. The sums
are integers and are added as integers: the weights in the narrowest type that holds them
(Loihi's even weights halved, in int8: these loops are bound by the bytes they load), into
an integer accumulator as wide as the output's float. The caller keeps every sum within
that float's exact range, so the output equals the dense product bit for bit.

Rows are flat per image, channels innermost: source j is pixel j // C, channel j % C (a
dense layer is one pixel), outputs likewise. A pixel reaches its outputs through runs
(a, b, n): its channel c adds wt[c, a:a + n] to out[b:b + n].
"""
from __future__ import annotations

import numba
import numpy as np

from .. import numba_threads  # noqa: F401  (before any parallel kernel runs)


@numba.njit(cache=True)
def any_active(s):
    """Whether the flat array s has a nonzero entry, stopping at the first."""
    for j in range(s.shape[0]):
        if s[j] != 0:
            return True
    return False


@numba.njit(parallel=True, cache=True)
def count_active(s):
    """How many entries of s (M, n) are nonzero."""
    per = np.zeros(s.shape[0], np.int64)
    for i in numba.prange(s.shape[0]):
        c = 0
        for j in range(s.shape[1]):
            c += s[i, j] != 0
        per[i] = c
    return per.sum()


@numba.njit(cache=True)
def _active(si, base, n_ch, active):
    """Lists in `active` the channels c with si[base + c] != 0, with no branch per channel
    (spikes are too irregular to predict); returns how many."""
    n = 0
    for c in range(n_ch):
        active[n] = c
        n += si[base + c] != 0
    return n


@numba.njit(cache=True)
def _add_rows(dst, wt, rows, n, a):
    """dst += the sum of wt[rows[q], a:a + len(dst)] over q < n, four rows per pass over
    dst (each pass loads and stores dst once: those bound this loop)."""
    k = dst.shape[0]
    q = 0
    while q + 4 <= n:
        w0, w1 = wt[rows[q], a:a + k], wt[rows[q + 1], a:a + k]
        w2, w3 = wt[rows[q + 2], a:a + k], wt[rows[q + 3], a:a + k]
        for c in range(k):
            dst[c] += (w0[c] + w1[c]) + (w2[c] + w3[c])
        q += 4
    for r in range(q, n):
        w0 = wt[rows[r], a:a + k]
        for c in range(k):
            dst[c] += w0[c]


@numba.njit(cache=True)
def _direct_row(si, acc, wt, n_ch, count, runs, active):
    """One image: each pixel's active channels add their weights run by run (best where a
    pixel reaches few of the taps, or the output row fits in cache)."""
    for p in range(count.shape[0]):
        n = _active(si, p * n_ch, n_ch, active)
        if n:
            for r in range(count[p]):
                a, b, k = runs[p, r, 0], runs[p, r, 1], runs[p, r, 2]
                _add_rows(acc[b:b + k], wt, active, n, a)


@numba.njit(cache=True)
def _per_pixel_row(si, acc, wt, n_ch, count, runs, active, pix):
    """One image: each pixel's active channels sum their whole weight rows in `pix`, which
    stays in cache, added to the output once (best where pixels reach nearly every tap of
    a large output, as in the wide transposed convolutions)."""
    for p in range(count.shape[0]):
        n = _active(si, p * n_ch, n_ch, active)
        if n:
            pix[:] = 0
            _add_rows(pix, wt, active, n, 0)
            for r in range(count[p]):
                a, b, k = runs[p, r, 0], runs[p, r, 1], runs[p, r, 2]
                wk, ok = pix[a:a + k], acc[b:b + k]
                for c in range(k):
                    ok[c] += wk[c]


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dot_row(si, o, wt, n_ch, count, runs):
    """One image, densely, for few output channels (the readout): per pixel and run (one
    output, n = 1), the dot of its spikes with the float weights wt[a] (n_ch,), vectorized
    over channels; reassociating integer sums is exact, and so is s * w + t for s in {0, 1}."""
    zero = np.zeros(1, wt.dtype)[0]
    for p in range(count.shape[0]):
        sp = si[p * n_ch:(p + 1) * n_ch]
        for r in range(count[p]):
            w = wt[runs[p, r, 0]]
            t = zero
            for c in range(n_ch):
                t += sp[c] * w[c]
            o[runs[p, r, 1]] += t


@numba.njit(cache=True)
def _to_float(o, acc, scale):
    """o = acc * scale, in place: acc is o's own memory, read as integers. Through a small
    buffer, block by block: a loop reading and writing the same memory as two arrays would
    run scalar (the vectorized loop's overlap check fails)."""
    tmp = np.empty(256, acc.dtype)
    for lo in range(0, o.shape[0], 256):
        a, ok = acc[lo:lo + 256], o[lo:lo + 256]
        t = tmp[:a.shape[0]]
        for c in range(t.shape[0]):
            t[c] = a[c] * scale
        for c in range(t.shape[0]):
            ok[c] = t[c]


# The kernels: out[i] = the synaptic input of spikes s[i]; acc is out's memory as integers
# of the same width. Images are independent, so the parallel loop runs over them, each
# writing its own row.

@numba.njit(parallel=True, cache=True)
def direct(s, wt, n_ch, count, runs, acc, out, scale):
    """By `_direct_row`."""
    for i in numba.prange(s.shape[0]):
        acc[i] = 0
        _direct_row(s[i], acc[i], wt, n_ch, count, runs, np.empty(n_ch, np.int64))
        _to_float(out[i], acc[i], scale)


@numba.njit(parallel=True, cache=True)
def per_pixel(s, wt, n_ch, count, runs, acc, out, scale):
    """By `_per_pixel_row`."""
    for i in numba.prange(s.shape[0]):
        acc[i] = 0
        _per_pixel_row(s[i], acc[i], wt, n_ch, count, runs, np.empty(n_ch, np.int64),
                       np.empty(wt.shape[1], acc.dtype))
        _to_float(out[i], acc[i], scale)


@numba.njit(parallel=True, cache=True)
def dots(s, wt, n_ch, count, runs, acc, out, scale):
    """By `_dot_row` (acc and scale unused: its weights are floats)."""
    for i in numba.prange(s.shape[0]):
        out[i] = 0
        _dot_row(s[i], out[i], wt, n_ch, count, runs)


def _taps(n_in: int, n_out: int, k: int, stride: int, pad: int, transposed: bool) -> list:
    """Per input coordinate along one axis, the (kernel offset, output coordinate) pairs it
    reaches."""
    pairs = []
    for i in range(n_in):
        row = []
        for off in range(k):
            if transposed:
                o, ok = i * stride - pad + off, True
            else:                           # output o reads input o * stride - pad + off
                q = i + pad - off
                o, ok = q // stride, q % stride == 0
            if ok and 0 <= o < n_out:
                row.append((off, o))
        pairs.append(row)
    return pairs


class EventSynapse:
    """A layer's weights laid out for event-driven input, and the row kernel that suits it.

    Inputs (M, H*W*C) and outputs (M, Ho*Wo*Co) are flat channels-last rows; a dense
    layer's (M, n_in) -> (M, n_out), its inputs in their source's memory order."""

    def __init__(self, layer, dtype: np.dtype, in_shape=None, in_order=None):
        """dtype: the output's float (that of the dots' weights); in_shape, in_order: a dense
        layer's source shape, and its dims from outermost to innermost in memory (None:
        flat, in order)."""
        w = np.asarray(layer.weight)
        if layer.kind == "dense":
            if in_order is not None:
                w = w.reshape(len(w), *in_shape).transpose(0, *(d + 1 for d in in_order))
            self.wt, self.scale = _narrow(w.reshape(len(w), -1).T)
            self.n_ch, self.kernel = self.wt.shape[0], direct
            self.count = np.ones(1, np.int64)
            self.runs = np.array([[[0, 0, self.wt.shape[1]]]], np.int64)
            return
        transposed = layer.kind == "convT"
        ci, h, wd = layer.in_shape
        co, ho, wo = layer.out_shape
        k = w.shape[2]
        # (ci, ky, kx, co): a channel's taps, each a contiguous run of its output channels
        wt = (w.transpose(0, 2, 3, 1) if transposed else w.transpose(1, 2, 3, 0)).reshape(ci, -1)
        few = co < 4          # runs too short to vectorize: a dot per tap and output channel
        ys = _taps(h, ho, k, layer.stride, layer.padding, transposed)
        xs = _taps(wd, wo, k, layer.stride, layer.padding, transposed)
        table = []
        for iy in range(h):
            for ix in range(wd):
                runs = []
                for ky, oy in ys[iy]:
                    for kx, ox in xs[ix]:
                        tap, dst = ky * k + kx, oy * wo + ox
                        if few:
                            runs += [(tap * co + c, dst * co + c, 1) for c in range(co)]
                        elif runs and runs[-1][0] + runs[-1][2] == tap * co \
                                and runs[-1][1] + runs[-1][2] == dst * co:
                            runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + co)
                        else:                       # taps adjacent in both merge
                            runs.append((tap * co, dst * co, co))
                table.append(runs)
        self.count = np.array([len(r) for r in table], np.int64)
        self.runs = np.zeros((len(table), max(1, self.count.max()), 3), np.int64)
        for p, runs in enumerate(table):
            self.runs[p, :len(runs)] = runs
        self.n_ch = ci
        if few:
            self.kernel, self.scale = dots, 1
            self.wt = np.ascontiguousarray(wt.T, dtype=dtype)
        else:
            # a sum of whole weight rows per pixel pays where pixels reach most taps (the
            # transposed convolutions, but for the smallest inputs); else run by run
            used = self.runs[..., 2].sum() / (h * wd * k * k * co)
            self.kernel = per_pixel if used > 0.8 else direct
            self.wt, self.scale = _narrow(wt)

    @property
    def any_density(self) -> bool:
        """Whether the kernel's work is the same at any density (then it always runs)."""
        return self.kernel is dots

    def __call__(self, s: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Synaptic input of spikes s (M, n_in) into out (M, n_out) of float32 or float64,
        overwritten (its sums: integers that float holds exactly, as the caller keeps them)."""
        acc = out.view(np.int32 if out.itemsize == 4 else np.int64)
        self.kernel(s, self.wt, self.n_ch, self.count, self.runs, acc, out, self.scale)
        return out


def _narrow(w: np.ndarray):
    """(w / scale in the narrowest integer type that holds it, scale): scale 2 where every
    weight is even and halving them fits int8 (Loihi's weights), else 1."""
    w = np.asarray(w, np.int64)
    lo, hi = (int(w.min()), int(w.max())) if w.size else (0, 0)
    scale = 2 if -256 <= lo and hi <= 254 and not (w % 2).any() else 1
    lo, hi = lo // scale, hi // scale
    t = next(t for t in (np.int8, np.int16, np.int32, np.int64)
             if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max)
    return np.ascontiguousarray(w // scale, dtype=t), scale
