"""The `emulator` backend: the Lava graph's fixed-point semantics, one layer at a time.

On the phase clock (`neurovae.hw.clock`) every feed-forward connection delivers a step's
spikes within the same local step of the next population's window, so a layer's synaptic
input for all steps is one batched convolution of its source's whole spike train; only the
LIF recurrence runs step by step, in a fused kernel (`lif_kernel`) that is exact on these
integers. Leading steps without input are not convolved, and the neuron state over them
(driven by bias alone, from step 0) is computed once for all images. The FSVAE loop is
recurrent, but its feedback z -> L1 arrives LOOP_LATENCY steps later, so it runs in blocks
of LOOP_LATENCY steps: L1's input over a block needs only z of the blocks before. Results
are spike-exact with the step-by-step reference (`neurovae.sim.reference`) and with Lava
(`neurovae verify`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ..hw import sampling
from ..hw.clock import LOOP_LATENCY
from ..hw.drive import input_drive
from ..hw.net import DeployNet, Layer
from ..hw.neuron import ACT_SHIFT, BIAS_EXP, DECAY_UNITY, UV_LIMIT, StateOverflow, lif_step
from ..hw.readout import readout_image, readout_neuron
from .lif_kernel import lif_run

FLOAT32_EXACT = 2 ** 24          # integers below this add exactly in float32


@dataclass
class Series:
    """Values of a population over steps start..start+len(data)-1; all zero before and
    after (a layer's spikes run to the window's end; a synaptic input may end early)."""

    start: int
    data: torch.Tensor           # (steps, N, ...) in the layer's shape

    def full(self, S: int) -> torch.Tensor:
        """(S, N, neurons) in (C, H, W) order, zeros filled in before start and after."""
        d = self.data.flatten(2)
        pad = torch.zeros(self.start, *d.shape[1:], dtype=d.dtype)
        tail = torch.zeros(max(0, S - self.start - len(d)), *d.shape[1:], dtype=d.dtype)
        return torch.cat([pad, d, tail])[:S]


class Connection:
    """One layer's synapses, applied to a batch of binary spike vectors.

    float32 when every possible sum of weights stays below 2**24 (then exact), else float64.
    """

    def __init__(self, layer: Layer):
        self.layer = layer
        w = np.abs(np.asarray(layer.weight, dtype=np.int64))
        bound = layer.spec.out_channel_weights(w).sum(1).max()
        self.dtype = torch.float32 if bound < FLOAT32_EXACT else torch.float64
        self.w = torch.as_tensor(np.asarray(layer.weight), dtype=self.dtype)

    @property
    def is_conv(self) -> bool:
        return self.w.dim() == 4

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        """Integer synaptic input for spikes s (M, ...) -> (M, n_out), or (M, C, H, W) for a
        convolution, in channels-last memory (faster here; the layout never changes values).
        """
        m, layer = s.shape[0], self.layer
        x = s.to(self.dtype)
        if self.is_conv:
            x = x.reshape(m, *layer.in_shape).contiguous(memory_format=torch.channels_last)
        return layer.spec.apply(layer, x, self.w)

    def over_steps(self, s: torch.Tensor) -> torch.Tensor:
        """Synaptic input for a spike train s (steps, N, ...) -> (steps, N, ...out)."""
        r = self(s.reshape(s.shape[0] * s.shape[1], *s.shape[2:]))
        return r.view(s.shape[0], s.shape[1], *r.shape[1:])


def synaptic_input(conn: Connection, spikes: Series, S: int) -> Series:
    """The input series of a layer fed by `spikes`: step s gets the spikes of step s.
    Only the steps from the first spike to the last are convolved: the others carry none
    (the decoder's last LOOP_LATENCY steps, where z is silent)."""
    d = spikes.data[:S - spikes.start]
    # the first and last steps with a spike, found step by step: usually among the first
    # and last few, so this reads little of the train (and copies none of it)
    lead = next((t for t in range(len(d)) if bool(d[t].any())), len(d))
    if lead == len(d):                      # nothing arrives in the window
        shape = conn.layer.out_shape if conn.is_conv else (conn.layer.n_out,)
        return Series(S, torch.zeros(0, d.shape[1], *shape, dtype=conn.dtype))
    end = next(t for t in range(len(d), lead, -1) if bool(d[t - 1].any()))
    return Series(spikes.start + lead, conn.over_steps(d[lead:end]))


def lif_series(a: Series, layer: Layer, S: int, dtype: torch.dtype = torch.uint8,
               buffer=None):
    """Bit-accurate CUBA LIF over an input series of integers; returns (spikes, final v).

    The arithmetic of `hw.neuron.lif_step` (its conformance test checks the kernel);
    Loihi's 24-bit state range is checked at every step. Spikes (0 or 1) come in `dtype`:
    the one the next synapse reads saves converting them there. buffer: see `lif_run`.
    """
    x = a.data
    shape, n = x.shape[2:], x.shape[1]
    steps = S - a.start                     # x holds the first of them; no input after
    bias = _bias(layer, shape)
    # steps before a.start: no input, so v follows the bias alone, the same in every image
    # (u stays zero: its decay of zero plus no input)
    v = torch.zeros(1, *shape, dtype=torch.float64)
    for _ in range(a.start):
        try:
            _, v, s = lif_step(0.0, v, 0.0, layer.neuron, bias)
        except StateOverflow:
            return _lif_stepped(a, layer, S, dtype)
        if bool(s.any()):
            return _lif_stepped(a, layer, S, dtype)
    if len(x) == 0:
        return Series(S, torch.empty_like(x, dtype=dtype)), v.expand(n, *shape)
    spikes, v, _ = lif_block(x, layer, v, None, bias, dtype, buffer, steps)
    return Series(a.start, spikes), v


def lif_block(x: torch.Tensor, layer: Layer, v0: torch.Tensor, u0, bias=None,
              dtype: torch.dtype = torch.uint8, buffer=None, steps: int | None = None):
    """LIF steps over inputs x (steps, N, ...) from state (v0, u0; u0 None = zero current);
    bias: the layer's `_bias`, when the caller already holds it; steps: how many to run
    (default len(x)), those after x's last without input.

    Neurons whose current is the step's input alone (all of neurovae's) run in the fused
    kernel; others step with `lif_step`. Returns (spikes of `dtype`, v, u) and raises
    StateOverflow when a state reaches Loihi's 24-bit limit.
    """
    p = layer.neuron
    bias = _bias(layer, x.shape[2:]) if bias is None else bias
    if steps is not None and steps > len(x):
        if p.i_decay != DECAY_UNITY or x.stride(0) == 0:    # rare: pad the input
            x = torch.cat([x, torch.zeros(steps - len(x), *x.shape[1:], dtype=x.dtype)])
    if p.i_decay != DECAY_UNITY:
        return _lif_with_current(x, layer, v0, u0, bias, dtype)
    fv = (DECAY_UNITY - p.v_decay) / DECAY_UNITY
    spikes, v, over = lif_run(x, bias * (1 << BIAS_EXP), v0, 1 << ACT_SHIFT, fv,
                              float(p.threshold_hw), UV_LIMIT - 1, dtype, buffer, steps)
    if over:
        raise StateOverflow(f"a neuron state in layer {layer.name} reached Loihi's 24-bit "
                            f"limit ({UV_LIMIT - 1})")
    return spikes, v, None


def _bias(layer: Layer, shape) -> torch.Tensor:
    """Bias mantissa per neuron in `shape`, as float64."""
    return torch.as_tensor(layer.bias_per_neuron(), dtype=torch.float64).view(shape)


def _lif_with_current(x, layer, v0, u0, bias, dtype=torch.uint8):
    """LIF with current memory (i_decay < 4096): `lif_step` step by step."""
    v = v0.expand(x.shape[1:]).double()
    u = torch.zeros_like(v) if u0 is None else u0
    spikes = torch.empty_like(x, dtype=dtype)
    for t in range(len(x)):
        try:
            u, v, s = lif_step(u, v, x[t].double(), layer.neuron, bias)
        except StateOverflow:
            raise StateOverflow(f"a neuron state in layer {layer.name} reached Loihi's 24-bit "
                                f"limit ({UV_LIMIT - 1})") from None
        spikes[t] = s
    return spikes, v, u


def _lif_stepped(a: Series, layer: Layer, S: int, dtype=torch.uint8):
    """The rare case of a bias alone driving spikes (or overflowing) before the first input:
    run from step 0 with the input padded."""
    x = a.data
    pad = torch.zeros(a.start, *x.shape[1:], dtype=x.dtype)
    return lif_series(Series(0, torch.cat([pad, x])), layer, S, dtype)


def _record(rec: dict | None, key: str, s: Series):
    """Keep a layer's spikes for the records, as uint8 (a copy: the train may live in a
    buffer that the next chunk overwrites)."""
    if rec is not None:
        rec[key] = Series(s.start, s.data.to(torch.uint8, copy=True))


def run_stack(layers: list, conns: list, first: Series, rec: dict | None, stage: str, S: int,
              dtype: torch.dtype = torch.uint8, buffers=None):
    """Feed a spike series through a feed-forward stack; returns the last layer's spikes, in
    `dtype` (each inner layer's come in the dtype its successor's synapse reads).
    buffers(key): a `lif_run` buffer for the layer named key, or None for fresh memory."""
    s = first
    dtypes = [c.dtype for c in conns[1:]] + [dtype]
    for layer, conn, dt in zip(layers, conns, dtypes):
        buf = None if buffers is None else buffers(f"{stage}/{layer.name}")
        s, _ = lif_series(synaptic_input(conn, s, S), layer, S, dt, buf)
        _record(rec, f"{stage}/{layer.name}", s)
    return s


class Emulator:
    """Reconstruct or generate with a DeployNet, batched over images and steps."""

    def __init__(self, net: DeployNet, chunk: int = 64):
        self.net, self.chunk = net, chunk
        self.enc = [Connection(l) for l in net.encoder]
        self.dec = [Connection(l) for l in net.decoder]
        self.readout = Connection(net.readout)
        self.readout_layer = dataclasses.replace(
            net.readout, neuron=readout_neuron(net.readout.neuron.v_decay))
        self.loops = {"posterior": [Connection(l) for l in net.posterior],
                      "prior": [Connection(l) for l in net.prior]}
        self._buffers: dict = {}

    def _buffer(self, key: str = ""):
        """A spike buffer (see `lif_run`), one per dtype, kept across layers, chunks and runs,
        so spikes are written to memory already mapped. Safe because each spike train is
        dead once the next layer's synaptic input is computed from it, before that layer's
        spikes are written (the synapse output is new memory); what outlives a layer (the
        encoder's output, records) is copied out first. key: unused (the layer's name)."""
        def get(numel: int, dtype: torch.dtype) -> torch.Tensor:
            b = self._buffers.get(dtype)
            if b is None or b.numel() < numel:
                b = self._buffers[dtype] = torch.empty(numel, dtype=dtype)
            return b
        return get

    def run(self, x_bytes: torch.Tensor | None, n: int, seed: int, first_image: int = 0,
            record: bool = False):
        """Same contract as `ReferenceSimulator.run`: (images in [-1, 1], records
        (N, neurons, S))."""
        total = n if x_bytes is None else len(x_bytes)
        outs, recs = [], []
        for lo in range(0, total, self.chunk):
            hi = min(total, lo + self.chunk)
            xb = None if x_bytes is None else torch.as_tensor(x_bytes[lo:hi])
            img, r = self._run_chunk(xb, hi - lo, seed, first_image + lo, record)
            outs.append(img)
            recs.append(r)
        records = {k: torch.cat([r[k] for r in recs]) for k in recs[0]} if record else {}
        return torch.cat(outs), records

    def _run_chunk(self, x_bytes, n, seed, first_image, record):
        net, S = self.net, self.net.n_steps
        gen = x_bytes is None
        images = torch.arange(first_image, first_image + n)
        rec = {} if record else None
        enc_out = None
        if not gen:
            # the input layer receives the drive at every step of its window
            drive = input_drive(net.encoder[0], x_bytes).double()
            first = net.encoder[0]
            # in channels-last memory, so its spikes come in the layout conv1 reads
            drive = drive.view(n, *first.out_shape).contiguous(
                memory_format=torch.channels_last)
            s0, _ = lif_series(Series(0, drive.unsqueeze(0).expand(S, *drive.shape)), first, S,
                               self.enc[1].dtype if len(self.enc) > 1 else torch.uint8,
                               self._buffer(f"encoder/{first.name}"))
            _record(rec, f"encoder/{first.name}", s0)
            enc_out = run_stack(net.encoder[1:], self.enc[1:], s0, rec, "encoder", S,
                                buffers=self._buffer)
            enc_out = enc_out.full(S)
        if net.kind == "fsvae":
            z = self._fsvae_loop(enc_out, n, seed, images, gen, rec)
        else:
            z = self._esvae_sampler(enc_out, n, seed, images, gen)
        if rec is not None:
            rec["sampler/z"] = Series(0, z)
        d = run_stack(net.decoder, self.dec, Series(0, z), rec, "decoder", S,
                      self.readout.dtype, self._buffer)
        _, v = lif_series(synaptic_input(self.readout, d, S), self.readout_layer, S,
                          buffer=self._buffer("readout"))
        v = v.round().long().reshape(n, -1)
        out = readout_image(v, net.readout.out_shape)
        if rec is None:
            return out, {}
        return out, {**{k: s.full(S).permute(1, 2, 0).contiguous() for k, s in rec.items()},
                     "readout_v": v}

    def _fsvae_loop(self, enc_out, n, seed, images, gen, rec):
        """The autoregressive loop z -> L1 -> L2 -> L3 -> pick -> z in blocks of
        LOOP_LATENCY steps: L1 at step s takes [E[s] | z[s - LOOP_LATENCY]], so a block's
        input needs only earlier blocks' z, and each layer's synapse is one batched product
        over the block."""
        net, S, B = self.net, self.net.n_steps, LOOP_LATENCY
        layers = net.loop(gen)
        conns = self.loops["prior" if gen else "posterior"]
        pick_seed = sampling.sampler_seed(seed, gen)
        series = [torch.zeros(S, n, l.n_out, dtype=torch.uint8) for l in layers]
        z = torch.zeros(S, n, net.latent, dtype=torch.uint8)
        state = [(torch.zeros(n, l.n_out, dtype=torch.float64), None) for l in layers]
        biases = [_bias(l, (l.n_out,)) for l in layers]
        for b in range(0, S, B):
            e = min(S, b + B)
            src = z[b - B:e - B] if b >= B else torch.zeros(e - b, n, net.latent,
                                                           dtype=torch.uint8)
            if not gen:
                src = torch.cat([enc_out[b:e], src], 2)
            for i, (layer, conn) in enumerate(zip(layers, conns)):
                s, v, u = lif_block(conn.over_steps(src), layer, *state[i], biases[i])
                series[i][b:e], state[i] = s, (v, u)
                src = s
            for t in range(b, min(e, net.sampler["T"])):
                z[t] = sampling.pick(series[-1][t], net.k, pick_seed, images, t)
        if rec is not None:
            for layer, s in zip(layers, series):
                rec[f"latent/{layer.name}"] = Series(0, s)
        return z

    def _esvae_sampler(self, enc_out, n, seed, images, gen):
        """ESVAE: at each sampling step, z = the encoder's spike at a PRNG-drawn step of its
        rate window (reconstruction), or Bernoulli spikes of the prior's counts."""
        net, S, sm = self.net, self.net.n_steps, self.net.sampler
        if gen:
            counts = sampling.prior_counts(net.prior_linear, seed, images)
        else:
            window = enc_out[sm["window_start"]:sm["sample_start"]].permute(1, 2, 0)
        z = torch.zeros(S, n, net.latent, dtype=torch.uint8)
        for t in range(S):
            if not sampling.in_window(sm, t)[1]:
                continue
            z[t] = (sampling.rate_spikes(counts, net.T, seed, images, t) if gen else
                    sampling.window_pick(window, net.T, seed, images, t)).to(torch.uint8)
        return z
