"""Compile a DeployNet (read from a `.net` file) into a Lava process graph of stock parts.

The graph runs on the phase clock (`docs/clock.md`, `neurovae.hw.clock`): every population
is a stock `LIFReset` whose window for image n is the global steps [n*S + h, n*S + h + S),
h its hop (connections from the host's input source), zeroed at the window's first step by
`reset_offset = clock.reset_offset(h, S)`. Connections are stock `Dense` (dense layers),
`Sparse` (convolutions, unrolled) and, for ESVAE's rate window, `DelayDense`. The samplers
are stock LIF neurons used as AND gates (`neurovae.hw.sampling`). With their stock
`fixed_pt` models and no model override of any process, this is what Loihi 2 computes.

The host sits only at the edges (`host_io`): a RingBuffer of image bytes (hop 0, into the
first convolution's Sparse), a RingBuffer of the samplers' one-hot selector bits (straight
into the AND neurons' a_in, 0 delay), for ESVAE generation a RingBuffer of the prior's z
spikes, and a read of the readout integrators' voltage `v` at the last step of each of
their windows. `SpikeRecorder` taps (verification only, `record=True`) are not part of the
deployed graph. One compiled graph runs all images back to back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lava.proc.dense.process import Dense, DelayDense
from lava.proc.io.source import RingBuffer
from lava.proc.lif.process import LIFReset
from lava.proc.sparse.process import Sparse

from neurovae.errors import NeurovaeError
from neurovae.hw import sampling
from neurovae.hw.clock import LOOP_LATENCY, MAX_SYNAPTIC_DELAY as MAX_DELAY, reset_offset
from neurovae.hw.drive import INPUT_SHIFT
from neurovae.hw.net import DeployNet
from neurovae.hw.neuron import BIAS_EXP, NeuronParams
from neurovae.hw.readout import readout_neuron

from .processes.recorder import SpikeRecorder

MESSAGE_BITS = 8     # Dense/Sparse take 8-bit payloads: same sums as binary spikes, ~3x
                     # faster Sparse on the CPU; needed for the graded image bytes
BYTE_BITS = 8        # an image byte on the host -> chip link
READ_BITS = 24       # a readout voltage (24-bit state) read back by the host


def run_config(hardware: bool = False):
    """The run config of the graph: Lava's fixed-point CPU simulator, or Loihi 2; every
    process runs the stock model Lava selects for it (no model overrides)."""
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
    if hardware:
        return Loihi2HwCfg()
    return Loihi2SimCfg(select_tag="fixed_pt")


@dataclass
class HostIO:
    """A host source at the graph's edge: what it streams and its bits per value."""

    proc: RingBuffer
    what: str
    bits: int            # per value per step on the host -> chip link


class LavaGraph:
    """The processes of one reconstruction (x_bytes given) or generation run of n images.

    x_bytes: image bytes (N, C, H, W) or (N, pixels), 0..255, or None to generate.
    `procs` lists every process of the deployed graph (recorders in `recorders`), `hops`
    each population's hop, `host_io` the host sources, `readout` the readout LIFReset.
    """

    def __init__(self, net: DeployNet, n_images: int, seed: int, x_bytes=None,
                 record: bool = False, first_image: int = 0):
        self.net, self.n, self.S = net, int(n_images), net.n_steps
        self.record, self.seed = record, seed
        self.images = np.arange(first_image, first_image + self.n, dtype=np.int64)
        self.procs: list = []
        self.hops: dict[str, int] = {}                    # population name -> hop
        self.host_io: list[HostIO] = []
        self.recorders: dict[str, tuple[SpikeRecorder, int, int]] = {}  # key -> (rec, hop, group)
        gen = x_bytes is None
        S, C = self.S, net.latent
        enc = [] if gen else net.encoder
        # the hop of z (where the decoder reads it), hence of the readout and the run length
        if net.kind == "fsvae":
            h_z = len(enc) + LOOP_LATENCY          # E -> L1 -> L2 -> L3 -> Z
        else:
            h_z = 0 if gen else len(enc) + 1       # the streamed z, or E -> Zd
        self.readout_hop = h_z + len(net.decoder) + 1
        self.total_steps = self.n * S + self.readout_hop

        # ---- encoder: image bytes (hop 0) -> Sparse(first conv, >> 8) -> populations
        enc_out = None
        if not gen:
            x = np.asarray(x_bytes).reshape(self.n, -1).astype(np.int32)
            if x.shape[1] != enc[0].n_in:
                raise NeurovaeError(f"{x.shape[1]} pixels do not fit the input layer's "
                                    f"{enc[0].n_in}")
            data = self._stream(x.shape[1], 0, range(S), lambda s: x)
            src = self._source(data, "input_bytes", "image bytes", BYTE_BITS)
            port = src.s_out
            for hop, layer in enumerate(enc, 1):
                pop = self._lif(layer.neuron, layer.bias_per_neuron(), f"encoder/{layer.name}",
                                hop)
                extra = dict(weight_exp=-INPUT_SHIFT) if hop == 1 else {}
                self._connect(port, pop, layer.spec.unrolled(layer), **extra)
                port = pop.s_out
            enc_out = port
        h_e = len(enc)

        # ---- sampler (and FSVAE's loop): z_port carries z, `repeat` neurons per latent
        if net.kind == "fsvae":
            loop = net.loop(gen)
            k = net.k
            lp = [self._lif(l.neuron, l.bias_per_neuron(), f"latent/{l.name}", h_e + 1 + i)
                  for i, l in enumerate(loop)]
            z = self._lif(sampling.AND_NEURON, np.zeros(C * k, np.int64), "sampler/and",
                          h_z, record_as="sampler/z", group=k)
            w1 = np.asarray(loop[0].weight, np.int64)
            if enc_out is not None:   # L1 takes [E | z]: two connections into one port
                self._connect(enc_out, lp[0], w1[:, :C], "_from_encoder")
                w_fb = w1[:, C:]
            else:
                w_fb = w1
            self._connect(z.s_out, lp[0], np.repeat(w_fb, k, axis=1), "_from_z")
            for layer, pre, post in zip(loop[1:], lp, lp[1:]):
                self._connect(pre.s_out, post, layer.spec.unrolled(layer))
            self._connect(lp[-1].s_out, z, sampling.AND_WEIGHT * np.eye(C * k, dtype=np.int64))
            pick_seed = sampling.sampler_seed(seed, gen)
            sel = self._stream(C * k, h_z, range(net.sampler["T"]), lambda s: (
                sampling.AND_WEIGHT * sampling.pick_selector(self.images, k, pick_seed,
                                                             self.images, s, C)))
            self._source(sel, "selector", "one-hot selectors of the AND neurons", 1,
                         into=z.a_in)
            z_port, repeat = z.s_out, k
        elif not gen:                 # ESVAE: E -> DelayDense (d = 1..2T-1) -> AND neurons
            T = net.sampler["T"]
            delays = sampling.window_delays(T)
            nd = len(delays)
            if delays.max() > MAX_DELAY:
                raise NeurovaeError(f"ESVAE's rate window needs synaptic delays up to "
                                    f"{delays.max()}; Loihi 2 allows {MAX_DELAY} (T <= 32)")
            zd = self._lif(sampling.AND_NEURON, np.zeros(C * nd, np.int64), "sampler/window",
                           h_z, record_as="sampler/z", group=nd)
            rows = np.arange(C * nd)
            w = np.zeros((C * nd, C), np.int64)
            d = np.zeros((C * nd, C), np.int64)
            w[rows, rows // nd] = sampling.AND_WEIGHT
            d[rows, rows // nd] = np.tile(delays, C)
            conn = DelayDense(weights=w.astype(np.int32), delays=d,
                              name=f"{zd.name}_synapses")
            enc_out.connect(conn.s_in)
            conn.a_out.connect(zd.a_in)
            self.procs.append(conn)
            start = net.sampler["sample_start"]
            sel = self._stream(C * nd, h_z, range(start, start + T), lambda s: (
                sampling.AND_WEIGHT * sampling.window_selector(self.images, T, seed,
                                                               self.images, s, C)))
            self._source(sel, "selector", "one-hot selectors of the window's AND neurons", 1,
                         into=zd.a_in)
            z_port, repeat = zd.s_out, nd
        else:                         # ESVAE generation: the host streams the prior's z
            T = net.sampler["T"]
            counts = sampling.prior_counts(net.prior_linear, seed, self.images)
            start = net.sampler["sample_start"]
            data = self._stream(C, 0, range(start, start + T), lambda s: sampling.rate_spikes(
                counts, T, seed, self.images, s))
            src = self._source(data, "prior_z", "the prior's z spikes", 1)
            if record:
                self._recorder("sampler/z", src.s_out, C, 0)
            z_port, repeat = src.s_out, 1

        # ---- decoder and readout
        dec = net.decoder
        port = z_port
        for i, layer in enumerate(dec):
            pop = self._lif(layer.neuron, layer.bias_per_neuron(), f"decoder/{layer.name}",
                            h_z + 1 + i)
            m = layer.spec.unrolled(layer)
            if i == 0 and repeat > 1:     # latent i's weights for each of its AND neurons
                m = m[:, np.repeat(np.arange(m.shape[1]), repeat)]
            self._connect(port, pop, m)
            port = pop.s_out
        r = net.readout
        self.readout = self._lif(readout_neuron(r.neuron.v_decay), r.bias_per_neuron(),
                                 "readout", self.readout_hop, record_as=None)
        self._connect(port, self.readout, r.spec.unrolled(r))

    # ---- the clock
    def n_slots(self, hop: int, s: int) -> np.ndarray:
        """Global steps of local step s of a hop-`hop` population, for every image."""
        return np.arange(self.n) * self.S + hop + s

    def _stream(self, rows: int, hop: int, steps, values) -> np.ndarray:
        """A host source's data over the whole run: values(s), (n_images, rows), at local
        step s of a hop-`hop` population for each s in `steps`; zero at every other step."""
        data = np.zeros((rows, self.total_steps), np.int32)
        for s in steps:
            data[:, self.n_slots(hop, s)] = np.asarray(values(s)).T
        return data

    def chunks(self) -> list[int]:
        """Run lengths that end exactly at each image's readout step (n*S + h(R) + S - 1):
        run them in order and read the readout voltage after each."""
        return [self.readout_hop + self.S] + [self.S] * (self.n - 1) if self.n else []

    # ---- building blocks
    def _lif(self, p: NeuronParams, bias, name: str, hop: int, record_as: str | None = "",
             group: int = 1) -> LIFReset:
        """A stock LIFReset population of hop `hop` (netx's mapping: du = iDecay - 1)."""
        bias = np.asarray(bias, np.int64)
        lif = LIFReset(shape=(len(bias),), du=max(p.i_decay - 1, 0), dv=p.v_decay,
                       vth=p.vth_mant, bias_mant=bias.astype(np.int16), bias_exp=BIAS_EXP,
                       reset_interval=self.S, reset_offset=reset_offset(hop, self.S),
                       name=name.replace("/", "_"))
        self.procs.append(lif)
        self.hops[lif.name] = hop
        key = name if record_as == "" else record_as
        if self.record and key:
            self._recorder(key, lif.s_out, len(bias), hop, group)
        return lif

    def _source(self, data: np.ndarray, name: str, what: str, bits: int, into=None):
        src = RingBuffer(data=data)
        src.name = name
        if into is not None:
            src.s_out.connect(into)
        self.procs.append(src)
        self.host_io.append(HostIO(src, what, bits))
        return src

    def _connect(self, src_port, dst, matrix, suffix: str = "", **kwargs):
        """Source port -> Dense (a dense matrix) or Sparse (an unrolled conv) -> dst.a_in,
        named after its destination."""
        kind = Dense if isinstance(matrix, np.ndarray) else Sparse
        conn = kind(weights=matrix.astype(np.int32), num_message_bits=MESSAGE_BITS,
                    name=f"{dst.name}_synapses{suffix}", **kwargs)
        src_port.connect(conn.s_in)
        conn.a_out.connect(dst.a_in)
        self.procs.append(conn)
        return conn

    def _recorder(self, key: str, port, size: int, hop: int, group: int = 1):
        rec = SpikeRecorder(shape=size, total_steps=self.total_steps)
        port.connect(rec.s_in)
        self.recorders[key] = (rec, hop, group)

    # ---- reading results
    def read_readout(self) -> np.ndarray:
        """The readout voltages now (host read of the readout LIF's v), int64."""
        return np.rint(np.asarray(self.readout.v.get(), np.float64)).astype(np.int64)

    def read_records(self) -> dict[str, np.ndarray]:
        """Recorded spikes as uint8 arrays (n_images, neurons, S), each population's global
        steps cut into its per-image windows; AND groups (sampler/z) ORed per latent."""
        out = {}
        N, S = self.n, self.S
        for key, (rec, hop, group) in self.recorders.items():
            packed = np.asarray(rec.packed.get(), np.float64).astype(np.int64).astype(np.int32)
            bits = np.unpackbits(packed.view(np.uint8), axis=1, bitorder="little")
            size = rec.proc_params["shape"]
            win = bits[hop:hop + N * S, :size].reshape(N, S, size).transpose(0, 2, 1)
            if group > 1:
                win = win.reshape(N, size // group, group, S).max(axis=2)
            out[key] = np.ascontiguousarray(win).astype(np.uint8)
        return out
