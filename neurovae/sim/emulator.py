"""The `emulator` backend: the Lava graph's fixed-point semantics, one layer at a time.

On the phase clock (`neurovae.hw.clock`) every feed-forward connection delivers a step's
spikes within the same local step of the next population's window, so a layer's synaptic
input for all steps is one batched pass over its source's whole spike train (event-driven
where spikes are sparse, `event_synapse`, else a dense convolution); only the LIF
recurrence runs step by step, in a fused kernel (`lif_kernel`) that is exact on these
integers and counts each step's spikes as it fires them. Steps before a train's first
spike and after its last are not convolved, and the neuron state over the leading ones
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
from .event_synapse import EventSynapse, any_active, count_active
from .lif_kernel import lif_run, memory_order

FLOAT32_EXACT = 2 ** 24          # integers below this add exactly in float32
# Above this fraction of active inputs, a dense product: where event-driven input stops
# paying, measured on the paper net's spike trains thinned or merged to other densities
# (from 0.37 to above 0.5, but 0.1 for its first convolution, 32 channels in short runs)
# and on uniform random spikes (from 0.35; 0.2 for that one).
EVENT_DENSITY = 0.35
# Below this many synapse visits (rows x synapses, ~0.5 ms of dense product), a dense
# product too: the event path's two parallel kernel launches would cost more than it saves.
EVENT_MIN_WORK = 50_000_000
# Images per chunk: as many as keep the widest layer's synaptic input and spike train (8
# bytes per neuron and step together) within CHUNK_MEMORY, from 16 to 256. Larger chunks
# run faster (fewer kernel launches and passes per image: at the MNIST paper config 64 ->
# ~200 images gave +15-20%), at about 7 MB of memory per image there.
CHUNK_MEMORY = 1 << 30
CHUNK_RANGE = (16, 256)


@dataclass
class Series:
    """Values of a population over steps start..start+len(data)-1; all zero before and
    after (a layer's spikes run to the window's end; a synaptic input may end early)."""

    start: int
    data: torch.Tensor           # (steps, N, ...) in the layer's shape
    fired: torch.Tensor | None = None   # spikes: the count at each of data's steps, if known

    def full(self, S: int) -> torch.Tensor:
        """(S, N, neurons) in (C, H, W) order, zeros filled in before start and after."""
        d = self.data.flatten(2)
        pad = torch.zeros(self.start, *d.shape[1:], dtype=d.dtype)
        tail = torch.zeros(max(0, S - self.start - len(d)), *d.shape[1:], dtype=d.dtype)
        return torch.cat([pad, d, tail])[:S]


class Connection:
    """One layer's synapses, applied to a batch of binary spike vectors.

    float32 when every possible sum of weights stays below 2**24 (then exact), else float64.
    Sparse input is event-driven (`event_synapse`: each spike adds its weights), dense input
    a dense product; both give the same integers.
    """

    def __init__(self, layer: Layer):
        self.layer = layer
        w = np.abs(np.asarray(layer.weight, dtype=np.int64))
        bound = layer.spec.out_channel_weights(w).sum(1).max()
        self.dtype = torch.float32 if bound < FLOAT32_EXACT else torch.float64
        self.w = torch.as_tensor(np.asarray(layer.weight), dtype=self.dtype)
        self.synapses = layer.spec.synapse_count(layer)
        self._events: dict = {}          # input layout -> EventSynapse

    @property
    def is_conv(self) -> bool:
        return self.w.dim() == 4

    def __call__(self, s: torch.Tensor, buffer=None, events: bool | None = None,
                 active: int | None = None) -> torch.Tensor:
        """Integer synaptic input for spikes s (M, ...) -> (M, n_out), or (M, C, H, W) for a
        convolution, in channels-last memory (faster here; the layout never changes values).

        buffer(numel, dtype): flat memory for an event-driven result (see `lif_run`); the
        result then lives there until the next call. events: force (True) or forbid
        (False) the event-driven path; by default it runs below EVENT_DENSITY, on at least
        EVENT_MIN_WORK synapse visits. active: how many of s are 1, where the caller knows.
        """
        m, layer = s.shape[0], self.layer
        if events is None:
            events = None if m * self.synapses >= EVENT_MIN_WORK else False
        if events is not False:
            ev, rows = self._event_rows(s)
            if active is None and not (events or ev.any_density):
                active = count_active(rows)
            if events or ev.any_density or active <= EVENT_DENSITY * rows.size:
                numel = m * layer.n_out
                out = (torch.empty(numel, dtype=self.dtype) if buffer is None else
                       buffer(numel, self.dtype)[:numel]).view(m, -1)
                ev(rows, out.numpy())
                if not self.is_conv:
                    return out
                co, ho, wo = layer.out_shape
                return out.view(m, ho, wo, co).permute(0, 3, 1, 2)
        x = s.to(self.dtype)
        if self.is_conv:
            x = x.reshape(m, *layer.in_shape).contiguous(memory_format=torch.channels_last)
        return layer.spec.apply(layer, x, self.w)

    def _event_rows(self, s: torch.Tensor):
        """(EventSynapse, s as flat rows (M, n_in) in its memory order): channels-last for a
        convolution; for a dense layer the order s is in, its weights arranged to match."""
        m, layer = s.shape[0], self.layer
        order = None                         # a dense layer's source dims, outermost first
        if self.is_conv:
            x = s.reshape(m, *layer.in_shape).contiguous(memory_format=torch.channels_last)
            x = x.permute(0, 2, 3, 1)
        elif s.dim() > 2 and (o := tuple(memory_order(s[0]))) != tuple(range(s.dim() - 1)):
            x, order = s.permute(0, *(d + 1 for d in o)), o
        else:
            x = s
        key = None if order is None else (tuple(s.shape[1:]), order)
        ev = self._events.get(key)
        if ev is None:
            ev = self._events[key] = EventSynapse(layer, self.w.numpy().dtype, s.shape[1:],
                                                  order)
        rows = x.contiguous().view(m, int(np.prod(x.shape[1:]))).numpy()
        # in the synapse's float, as from the LIF kernel, for one compiled kernel (the FSVAE
        # loop's few spikes come in uint8); numpy's cast: torch's starts a thread team
        return ev, rows.astype(self.w.numpy().dtype, copy=False)

    def over_steps(self, s: torch.Tensor, buffer=None, active: int | None = None) -> torch.Tensor:
        """Synaptic input for a spike train s (steps, N, ...) -> (steps, N, ...out)."""
        r = self(s.reshape(s.shape[0] * s.shape[1], *s.shape[2:]), buffer, active=active)
        return r.view(s.shape[0], s.shape[1], *r.shape[1:])


def synaptic_input(conn: Connection, spikes: Series, S: int, buffer=None) -> Series:
    """The input series of a layer fed by `spikes`: step s gets the spikes of step s.
    Only the steps from the first spike to the last are convolved: the others carry none
    (the decoder's last LOOP_LATENCY steps, where z is silent). buffer: see `Connection`."""
    d = spikes.data[:S - spikes.start]
    active = None
    if spikes.fired is not None:            # the LIF kernel counted them
        steps = torch.nonzero(spikes.fired[:len(d)]).flatten().tolist()
        lead, end = (steps[0], steps[-1] + 1) if steps else (len(d), len(d))
        active = int(spikes.fired[lead:end].sum())
    else:
        # the first and last steps with a spike, found step by step: usually among the
        # first and last few, so this reads little of the train (and copies none of it)
        lead = next((t for t in range(len(d)) if _any(d[t])), len(d))
        end = len(d) if lead == len(d) else next(t for t in range(len(d), lead, -1)
                                                   if _any(d[t - 1]))
    if lead == len(d):                      # nothing arrives in the window
        shape = conn.layer.out_shape if conn.is_conv else (conn.layer.n_out,)
        return Series(S, torch.zeros(0, d.shape[1], *shape, dtype=conn.dtype))
    return Series(spikes.start + lead, conn.over_steps(d[lead:end], buffer, active))


def _any(x: torch.Tensor) -> bool:
    """Whether x has a nonzero entry, read in memory order up to the first one (torch's
    `any` reads all of x, and starts its thread team each call)."""
    return bool(any_active(x.permute(memory_order(x)).contiguous().view(-1).numpy()))


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
    fired = torch.zeros(steps, dtype=torch.int64)
    spikes, v, _ = lif_block(x, layer, v, None, bias, dtype, buffer, steps, fired)
    return Series(a.start, spikes, fired), v


def lif_block(x: torch.Tensor, layer: Layer, v0: torch.Tensor, u0, bias=None,
              dtype: torch.dtype = torch.uint8, buffer=None, steps: int | None = None,
              fired: torch.Tensor | None = None):
    """LIF steps over inputs x (steps, N, ...) from state (v0, u0; u0 None = zero current);
    bias: the layer's `_bias`, when the caller already holds it; steps: how many to run
    (default len(x)), those after x's last without input; fired: see `lif_run`.

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
        spikes, v, u = _lif_with_current(x, layer, v0, u0, bias, dtype)
        if fired is not None:
            fired.copy_(spikes.reshape(len(spikes), -1).sum(1))
        return spikes, v, u
    fv = (DECAY_UNITY - p.v_decay) / DECAY_UNITY
    spikes, v, over = lif_run(x, bias * (1 << BIAS_EXP), v0, 1 << ACT_SHIFT, fv,
                              float(p.threshold_hw), UV_LIMIT - 1, dtype, buffer, steps, fired)
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
        rec[key] = Series(s.start, s.data.to(torch.uint8, copy=True), s.fired)


def run_stack(layers: list, conns: list, first: Series, rec: dict | None, stage: str, S: int,
              dtype: torch.dtype = torch.uint8, buffers=None):
    """Feed a spike series through a feed-forward stack; returns the last layer's spikes, in
    `dtype` (each inner layer's come in the dtype its successor's synapse reads).
    buffers(key): a `lif_run` buffer for the layer named key (key "synapse": for synaptic
    input), or None for fresh memory."""
    s = first
    dtypes = [c.dtype for c in conns[1:]] + [dtype]
    for layer, conn, dt in zip(layers, conns, dtypes):
        buf = None if buffers is None else buffers(f"{stage}/{layer.name}")
        syn = None if buffers is None else buffers("synapse")
        s, _ = lif_series(synaptic_input(conn, s, S, syn), layer, S, dt, buf)
        _record(rec, f"{stage}/{layer.name}", s)
    return s


def auto_chunk(net: DeployNet) -> int:
    """Images per chunk for `net` (see CHUNK_MEMORY)."""
    widest = max(l.n_out for l in [*net.encoder, *net.decoder, net.readout])
    lo, hi = CHUNK_RANGE
    return max(lo, min(hi, CHUNK_MEMORY // (8 * net.n_steps * widest)))


class Emulator:
    """Reconstruct or generate with a DeployNet, batched over images and steps; `chunk`
    images at a time (default `auto_chunk`)."""

    def __init__(self, net: DeployNet, chunk: int | None = None):
        self.net, self.chunk = net, chunk or auto_chunk(net)
        self.enc = [Connection(l) for l in net.encoder]
        self.dec = [Connection(l) for l in net.decoder]
        self.readout = Connection(net.readout)
        self.readout_layer = dataclasses.replace(
            net.readout, neuron=readout_neuron(net.readout.neuron.v_decay))
        self.loops = {"posterior": [Connection(l) for l in net.posterior],
                      "prior": [Connection(l) for l in net.prior]}
        self._buffers: dict = {}

    def _buffer(self, key: str = ""):
        """A buffer (see `lif_run`) per dtype for spikes and, apart, for synaptic input (key
        "synapse"), kept across layers, chunks and runs, so results are written to memory
        already mapped (a fresh allocation's first touch faults every page in). Safe because
        each spike train is dead once the next layer's synaptic input is computed from it,
        and each synaptic input once its layer's spikes are; what outlives a layer (the
        encoder's output, records) is copied out first. key: else unused (the layer's name)."""
        pool = "synapse" if key == "synapse" else "spikes"

        def get(numel: int, dtype: torch.dtype) -> torch.Tensor:
            b = self._buffers.get((pool, dtype))
            if b is None or b.numel() < numel:
                b = self._buffers[pool, dtype] = torch.empty(numel, dtype=dtype)
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
        _, v = lif_series(synaptic_input(self.readout, d, S, self._buffer("synapse")),
                          self.readout_layer, S,
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
                a = conn.over_steps(src, self._buffer("synapse"))
                s, v, u = lif_block(a, layer, *state[i], biases[i])
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
